#!/bin/sh
# spamcli: learn the message on stdin as LABEL, spam or ham (the one
# argument). report-spam.sieve pipes here, with spam, each message a user
# moves or copies into Junk; report-ham.sieve, with ham, each one moved or
# copied out of Junk into any mailbox but Trash (docs/dovecot.md).
#
# Dovecot runs this as the mail user with HOME, USER and HOST set and
# nothing else: no PATH, no SPAMCLI_MODEL from a login shell. The settings
# are therefore below, and spamcli-learn.conf beside this script, a shell
# fragment read when it exists, may change them:
#   SPAMCLI          the spamcli command (a full path if it is not in
#                    /usr/local/bin, /usr/bin or /bin)
#   SPAMCLI_MODEL    the model folder to learn into; unset, the mail user's
#                    own, ~/.local/share/spamcli/model (made from the
#                    built-in model on the first learn)
#   SPAMCLI_TIMEOUT  seconds spamcli may take, below Dovecot's
#                    sieve_pipe_exec_timeout (10 s)
#   SPAMCLI_SYSLOG   yes: also log to syslog (facility mail, tag spamcli-learn)
#
# It reads the whole message and exits 0 whatever happens: a failed learn
# must not fail the user's MOVE or COPY. A failure is written to stderr,
# which Dovecot logs as an error, and to syslog; a success to syslog only.
case "${1:-}" in
spam | ham) label=$1 ;;
*)
    # Nothing was learned: said where Dovecot logs it, and exit 0 all the
    # same (the user's MOVE must not fail), with the message read.
    echo "spamcli-learn: usage: spamcli-learn.sh spam|ham (got '${1:-}')" >&2
    cat >/dev/null
    exit 0
    ;;
esac

PATH=${PATH:-/usr/local/bin:/usr/bin:/bin}
export PATH
SPAMCLI=spamcli
SPAMCLI_TIMEOUT=8
SPAMCLI_SYSLOG=yes
settings="${0%/*}/spamcli-learn.conf"
if [ -r "$settings" ]; then
    . "$settings"
fi
if [ -n "${SPAMCLI_MODEL:-}" ]; then
    export SPAMCLI_MODEL
fi

log() { # PRIORITY MESSAGE
    if [ "$SPAMCLI_SYSLOG" = yes ]; then
        logger -t spamcli-learn -p "mail.$1" -- "$2" 2>/dev/null || :
    fi
}

if command -v timeout >/dev/null 2>&1; then
    output=$(timeout "$SPAMCLI_TIMEOUT" "$SPAMCLI" learn --$label - 2>&1)
else
    output=$("$SPAMCLI" learn --$label - 2>&1)
fi
status=$?
if [ "$status" -eq 124 ]; then
    output="timed out after $SPAMCLI_TIMEOUT s (SPAMCLI_TIMEOUT) $output"
fi
# What spamcli left unread (all of it, if it failed before reading):
# Dovecot counts a message not read to the end as a failed pipe.
cat >/dev/null
output=$(printf '%s' "$output" | tr '\n' ' ')

if [ "$status" -eq 0 ]; then
    log info "${USER:-?}: $output"
else
    message="${USER:-?}: spamcli learn --$label failed (exit status $status): $output"
    echo "spamcli-learn: $message" >&2
    log err "$message"
fi
exit 0
