build/lib/tpm.o: lib/tpm.c lib/tpm.h lib/errmsg.h lib/macro.h \
 lib/secret.h
lib/tpm.h:
lib/errmsg.h:
lib/macro.h:
lib/secret.h:
