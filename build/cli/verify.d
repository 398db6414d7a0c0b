build/cli/verify.o: cli/verify.c lib/atls-curl.h lib/atls.h lib/attest.h \
 lib/errmsg.h lib/macro.h lib/policy.h cli/cli.h lib/config.h \
 lib/encoding.h lib/json-util.h lib/log.h
lib/atls-curl.h:
lib/atls.h:
lib/attest.h:
lib/errmsg.h:
lib/macro.h:
lib/policy.h:
cli/cli.h:
lib/config.h:
lib/encoding.h:
lib/json-util.h:
lib/log.h:
