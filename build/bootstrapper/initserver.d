build/bootstrapper/initserver.o: bootstrapper/initserver.c \
 bootstrapper/initserver.h lib/atls.h lib/attest.h lib/errmsg.h \
 lib/macro.h lib/policy.h lib/http-server.h lib/json-util.h lib/log.h \
 lib/openssl-util.h
bootstrapper/initserver.h:
lib/atls.h:
lib/attest.h:
lib/errmsg.h:
lib/macro.h:
lib/policy.h:
lib/http-server.h:
lib/json-util.h:
lib/log.h:
lib/openssl-util.h:
