build/lib/openssl-util.o: lib/openssl-util.c lib/openssl-util.h \
 lib/errmsg.h lib/macro.h
lib/openssl-util.h:
lib/errmsg.h:
lib/macro.h:
