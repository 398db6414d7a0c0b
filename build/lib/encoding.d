build/lib/encoding.o: lib/encoding.c lib/encoding.h lib/macro.h
lib/encoding.h:
lib/macro.h:
