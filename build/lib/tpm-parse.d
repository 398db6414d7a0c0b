build/lib/tpm-parse.o: lib/tpm-parse.c lib/tpm-parse.h lib/errmsg.h \
 lib/macro.h lib/openssl-util.h
lib/tpm-parse.h:
lib/errmsg.h:
lib/macro.h:
lib/openssl-util.h:
