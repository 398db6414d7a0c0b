build/bootstrapper/main.o: bootstrapper/main.c lib/atls.h lib/attest.h \
 lib/errmsg.h lib/macro.h lib/policy.h bootstrapper/initserver.h \
 lib/log.h lib/tpm.h
lib/atls.h:
lib/attest.h:
lib/errmsg.h:
lib/macro.h:
lib/policy.h:
bootstrapper/initserver.h:
lib/log.h:
lib/tpm.h:
