/* SPDX-License-Identifier: Apache-2.0 */
/* arca-bootstrapper: per-node daemon. Wires the modules together: TPM,
 * attester, init server. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atls.h"
#include "attest.h"
#include "initserver.h"
#include "log.h"
#include "tpm.h"

struct options {
        const char *tcti;
        const char *variant;
        const char *listen;
        uint16_t port;
        uint32_t ak_handle;
        bool check_config;
};

static void help(void) {
        printf("Usage: arca-bootstrapper [OPTIONS]\n\n"
               "Per-node daemon of arca: attests the node over aTLS and serves the init\n"
               "endpoint (port %u).\n\n"
               "Options:\n"
               "  --tcti CONF         TPM access (default $ARCA_TCTI or device:/dev/tpmrm0),\n"
               "                      e.g. swtpm:host=127.0.0.1,port=2321\n"
               "  --variant NAME      attestation variant (default qemu-vtpm)\n"
               "  --listen ADDR       address of the init server (default 0.0.0.0)\n"
               "  --port N            port of the init server (default %u)\n"
               "  --ak-handle HEX     persistent handle of the AK (default 0x%08x)\n"
               "  --check-config      open the TPM, check the AK and its platform\n"
               "                      certificate, then exit\n"
               "  --log-level LEVEL   err, warning, info, debug\n"
               "  -h, --help          show this help\n",
               INIT_SERVER_PORT, INIT_SERVER_PORT, TPM_AK_HANDLE);
}

static int parse_u32(const char *s, uint32_t max, uint32_t *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 0);
        if (errno || *end || end == s || v > max)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

static int parse_args(int argc, char **argv, struct options *o) {
        enum { ARG_TCTI = 256, ARG_VARIANT, ARG_LISTEN, ARG_PORT, ARG_AK, ARG_CHECK, ARG_LOG };
        static const struct option opts[] = {
                { "tcti", required_argument, NULL, ARG_TCTI },
                { "variant", required_argument, NULL, ARG_VARIANT },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "port", required_argument, NULL, ARG_PORT },
                { "ak-handle", required_argument, NULL, ARG_AK },
                { "check-config", no_argument, NULL, ARG_CHECK },
                { "log-level", required_argument, NULL, ARG_LOG },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c, l;
        uint32_t v;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case ARG_TCTI:
                        o->tcti = optarg;
                        break;
                case ARG_VARIANT:
                        o->variant = optarg;
                        break;
                case ARG_LISTEN:
                        o->listen = optarg;
                        break;
                case ARG_PORT:
                        if (parse_u32(optarg, 65535, &v) < 0)
                                return log_error_errno(EINVAL, "Invalid --port \"%s\"", optarg);
                        o->port = (uint16_t) v;
                        break;
                case ARG_AK:
                        if (parse_u32(optarg, UINT32_MAX, &v) < 0 || (v >> 24) != 0x81)
                                return log_error_errno(EINVAL, "Invalid --ak-handle \"%s\": expected 0x81xxxxxx",
                                                       optarg);
                        o->ak_handle = v;
                        break;
                case ARG_CHECK:
                        o->check_config = true;
                        break;
                case ARG_LOG:
                        l = log_level_from_string(optarg);
                        if (l < 0)
                                return log_error_errno(EINVAL, "Invalid --log-level \"%s\"", optarg);
                        log_set_max_level(l);
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument \"%s\"", argv[optind]);
        return 1;
}

static void on_atls_failure(const char *what, const char *reason, void *userdata) {
        log_warning("aTLS handshake failed while %s: %s", what, reason);
}

static void on_signal(evutil_socket_t fd, short what, void *arg) {
        log_info("Received signal %d, shutting down.", (int) fd);
        event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
        struct options o = {
                .variant = "qemu-vtpm",
                .listen = "0.0.0.0",
                .port = INIT_SERVER_PORT,
                .ak_handle = TPM_AK_HANDLE,
        };
        _cleanup_tpm_ struct tpm_ctx *tpm = NULL;
        _cleanup_(attester_freep) struct attester *attester = NULL;
        struct atls_config atls = {};
        struct init_server *server = NULL;
        struct event_base *base = NULL;
        struct event *sigint = NULL, *sigterm = NULL;
        struct errmsg e = {};
        int r;

        log_setup("arca-bootstrapper");
        r = parse_args(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        signal(SIGPIPE, SIG_IGN);

        r = tpm_open(o.tcti, &tpm, &e);
        if (r < 0) {
                log_error_errno(r, "Failed to open the TPM: %s", errmsg_str(&e));
                return 1;
        }
        r = attester_new(o.variant, tpm, o.ak_handle, &attester, &e);
        if (r < 0) {
                log_error_errno(r, "Failed to set up attestation: %s", errmsg_str(&e));
                return 1;
        }
        if (o.check_config) {
                log_info("Configuration OK: TPM reachable, variant %s, AK 0x%08x with platform trust material.",
                         o.variant, o.ak_handle);
                return 0;
        }
        atls.attester = attester;
        atls.on_failure = on_atls_failure;

        base = event_base_new();
        if (!base)
                return log_oom(), 1;
        r = init_server_new(base, &atls, o.listen, o.port, &server, &e);
        if (r < 0) {
                log_error_errno(r, "Failed to start the init server: %s", errmsg_str(&e));
                event_base_free(base);
                return 1;
        }
        sigint = evsignal_new(base, SIGINT, on_signal, base);
        sigterm = evsignal_new(base, SIGTERM, on_signal, base);
        if (!sigint || !sigterm || event_add(sigint, NULL) < 0 || event_add(sigterm, NULL) < 0) {
                r = log_oom();
                goto out;
        }
        log_info("Init server listening on %s:%u (variant %s).", o.listen, init_server_port(server), o.variant);
        /* Readiness line for supervisors that read stdout. */
        printf("READY port=%u\n", init_server_port(server));
        fflush(stdout);
        event_base_dispatch(base);
        r = 0;
out:
        if (sigint)
                event_free(sigint);
        if (sigterm)
                event_free(sigterm);
        init_server_free(server);
        event_base_free(base);
        return r < 0 ? 1 : 0;
}
