build/lib/secret.o: lib/secret.c lib/secret.h lib/macro.h
lib/secret.h:
lib/macro.h:
