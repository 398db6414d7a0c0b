build/cli/main.o: cli/main.c cli/cli.h lib/log.h lib/macro.h
cli/cli.h:
lib/log.h:
lib/macro.h:
