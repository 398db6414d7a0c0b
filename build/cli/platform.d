build/cli/platform.o: cli/platform.c cli/cli.h lib/log.h lib/macro.h \
 lib/openssl-util.h lib/errmsg.h lib/platform.h lib/tpm.h
cli/cli.h:
lib/log.h:
lib/macro.h:
lib/openssl-util.h:
lib/errmsg.h:
lib/platform.h:
lib/tpm.h:
