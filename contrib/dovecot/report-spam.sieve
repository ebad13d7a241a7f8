# spamcli: a message the user moves or copies into Junk is learned as spam.
#
# Dovecot's IMAPSieve runs this for every message of an IMAP COPY or MOVE
# into Junk (imapsieve_mailbox1_* in 90-spamcli-imapsieve.conf), as the mail
# user; spamcli-learn.sh spam, in sieve_pipe_bin_dir, gets the message on stdin.
# :copy keeps the message where the user put it: without it, pipe would
# cancel the implicit keep and Dovecot would flag the message \Deleted.
# Compile it with sievec after every change (docs/dovecot.md).
require ["vnd.dovecot.pipe", "copy"];

pipe :copy "spamcli-learn.sh" ["spam"];
