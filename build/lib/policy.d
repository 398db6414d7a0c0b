build/lib/policy.o: lib/policy.c lib/policy.h lib/errmsg.h lib/macro.h \
 lib/encoding.h lib/fileio.h lib/json-util.h lib/openssl-util.h
lib/policy.h:
lib/errmsg.h:
lib/macro.h:
lib/encoding.h:
lib/fileio.h:
lib/json-util.h:
lib/openssl-util.h:
