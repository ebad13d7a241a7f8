# spamcli: a message the user moves or copies out of Junk is learned as ham,
# unless it goes to Trash.
#
# Dovecot's IMAPSieve runs this for every message of an IMAP COPY or MOVE
# from Junk into any mailbox (imapsieve_mailbox2_* in
# 90-spamcli-imapsieve.conf), as the mail user; spamcli-learn.sh ham, in
# sieve_pipe_bin_dir, gets the message on stdin. imap.mailbox is the
# mailbox the message arrives in. Compile it with sievec after every change
# (docs/dovecot.md).
require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment"];

# Deleting a spam says nothing about it; a copy from Junk into Junk is no
# correction either (report-spam.sieve runs for it too). Add the name of
# any other trash folder your users' clients use ("Deleted Messages", say).
if environment :is "imap.mailbox" ["Trash", "Junk"] {
    stop;
}

# :copy keeps the message where the user put it (see report-spam.sieve).
pipe :copy "spamcli-learn.sh" ["ham"];
