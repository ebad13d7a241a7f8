from spamcli.cli import main

main()
