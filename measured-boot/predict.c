/* SPDX-License-Identifier: Apache-2.0 */
/* arca-measure predict --uki FILE [--phases LIST] [--firmware-log LOG] [--warn-only PCRS] [-o text|json]
 *                      [--policy FILE] */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootpcr.h"
#include "encoding.h"
#include "eventlog.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "measure.h"
#include "pcr11.h"
#include "policy.h"
#include "uki.h"

/* PCRs that only the platform determines; a reference log of the platform
 * supplies them, warn-only unless told otherwise. */
#define FIRMWARE_PCRS ((1u << 0) | (1u << 1) | (1u << 2) | (1u << 3) | (1u << 5) | (1u << 6) | (1u << 7))

static void help(void) {
        printf("Usage: arca-measure predict --uki FILE [OPTIONS]\n\n"
               "Predict the PCRs (SHA-256) that booting the UKI directly from OVMF produces and\n"
               "write them as a measurement policy: PCR 4 (the firmware's boot application\n"
               "measurements: UKI and kernel), 9 (the kernel's EFI stub: command line, initrd),\n"
               "11 (systemd-stub %u: sections, then boot phases), 12 and 13 (credentials and\n"
               "system extensions: none). See docs/MEASURED-BOOT.md.\n\n"
               "  --uki FILE              the unified kernel image\n"
               "  --phases LIST           boot phases measured into PCR 11 before the quote,\n"
               "                          ':'-separated as systemd-measure takes them, e.g.\n"
               "                          enter-initrd:leave-initrd:sysinit:ready (default: none)\n"
               "  --failed-boot-attempts N boot options the firmware tried before the UKI\n"
               "                          (default 0)\n"
               "  --secure-boot           the node boots with Secure Boot on: the firmware\n"
               "                          then does not measure the kernel into PCR 4\n"
               "  --firmware-log LOG      an event log of a boot on the target platform: its\n"
               "                          replayed PCRs 0-3 and 5-7 (firmware, configuration,\n"
               "                          Secure Boot) join the policy, warn-only\n"
               "  --enforce PCRS          comma-separated firmware PCRs to enforce instead\n"
               "  --warn-only PCRS        comma-separated PCRs to mark warnOnly\n"
               "  -o, --output FORMAT     text (default: each measurement, then N:sha256=HEX)\n"
               "                          or json (the policy)\n"
               "  --policy FILE           also write the policy to FILE\n"
               "  --stub-version N        model systemd-stub N even though the UKI's stub says\n"
               "                          otherwise (only %u is supported)\n",
               PCR11_STUB_VERSION, PCR11_STUB_VERSION);
}

static int parse_pcr_list(const char *s, uint32_t *ret) {
        uint32_t m = 0;

        if (!*s)
                return -EINVAL;
        while (*s) {
                char *end;
                unsigned long v;

                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = strtoul(s, &end, 10);
                if (v >= POLICY_PCR_COUNT || (*end && *end != ','))
                        return -EINVAL;
                m |= UINT32_C(1) << v;
                s = *end ? end + 1 : end;
        }
        *ret = m;
        return 0;
}

static int firmware_pcrs(const char *path, uint8_t out[POLICY_PCR_COUNT][32]) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        _cleanup_free_ struct eventlog_pcrs *p = NULL;
        const struct eventlog_bank *b;
        struct errmsg e = {};
        int r;

        r = eventlog_load(path, &l, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot read the event log \"%s\": %s", path, errmsg_str(&e));
        p = malloc(sizeof(*p));
        if (!p)
                return log_oom();
        r = eventlog_replay(l, p, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot replay the event log \"%s\": %s", path, errmsg_str(&e));
        b = eventlog_pcrs_bank(p, EVENTLOG_ALG_SHA256);
        if (!b || !b->replayed)
                return log_error_errno(-EBADMSG, "The event log \"%s\" has no SHA-256 bank.", path);
        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++)
                memcpy(out[i], b->pcr[i], 32);
        return 0;
}

int verb_predict(int argc, char **argv) {
        enum { ARG_UKI = 0x100, ARG_PHASES, ARG_WARN_ONLY, ARG_ENFORCE, ARG_POLICY, ARG_STUB_VERSION, ARG_LOG,
               ARG_FAILED, ARG_SECURE_BOOT };
        static const struct option opts[] = {
                { "uki", required_argument, NULL, ARG_UKI },
                { "phases", required_argument, NULL, ARG_PHASES },
                { "warn-only", required_argument, NULL, ARG_WARN_ONLY },
                { "enforce", required_argument, NULL, ARG_ENFORCE },
                { "firmware-log", required_argument, NULL, ARG_LOG },
                { "failed-boot-attempts", required_argument, NULL, ARG_FAILED },
                { "secure-boot", no_argument, NULL, ARG_SECURE_BOOT },
                { "output", required_argument, NULL, 'o' },
                { "policy", required_argument, NULL, ARG_POLICY },
                { "stub-version", required_argument, NULL, ARG_STUB_VERSION },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ struct bootpcr_prediction *pred = NULL;
        _cleanup_free_ struct pe_image *pe = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *json = NULL;
        const char *uki = NULL, *phases_arg = "", *output = "text", *policy_path = NULL, *log_path = NULL;
        uint32_t warn_only = 0, enforce = 0;
        struct bootpcr_options bopts = {};
        struct pcr11_phases phases;
        struct policy policy = {};
        unsigned major = 0, assume = 0;
        char version[64] = "", hex[65], phase_str[PCR11_MAX_PHASES * (PCR11_PHASE_MAX_LEN + 1) + 1];
        uint8_t fw[POLICY_PCR_COUNT][32];
        struct errmsg e = {};
        size_t size;
        char *end;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) >= 0)
                switch (c) {
                case ARG_UKI:
                        uki = optarg;
                        break;
                case ARG_PHASES:
                        phases_arg = optarg;
                        break;
                case ARG_WARN_ONLY:
                case ARG_ENFORCE:
                        if (parse_pcr_list(optarg, c == ARG_WARN_ONLY ? &warn_only : &enforce) < 0) {
                                log_error("Invalid --%s \"%s\": expected PCR indices 0-23 separated by commas.",
                                          c == ARG_WARN_ONLY ? "warn-only" : "enforce", optarg);
                                return 2;
                        }
                        break;
                case ARG_LOG:
                        log_path = optarg;
                        break;
                case ARG_FAILED:
                        errno = 0;
                        bopts.failed_boot_attempts = (unsigned) strtoul(optarg, &end, 10);
                        if (errno || *end || !*optarg || bopts.failed_boot_attempts > 8) {
                                log_error("Invalid --failed-boot-attempts \"%s\": expected 0-8.", optarg);
                                return 2;
                        }
                        break;
                case ARG_SECURE_BOOT:
                        bopts.secure_boot = true;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case ARG_POLICY:
                        policy_path = optarg;
                        break;
                case ARG_STUB_VERSION:
                        assume = (unsigned) strtoul(optarg, NULL, 10);
                        if (assume != PCR11_STUB_VERSION) {
                                log_error("--stub-version %s: only systemd-stub %u is modelled.", optarg,
                                          PCR11_STUB_VERSION);
                                return 2;
                        }
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        if (!uki || optind != argc) {
                log_error("arca-measure predict needs --uki and no positional arguments (see --help).");
                return 2;
        }
        if (!streq(output, "text") && !streq(output, "json")) {
                log_error("Unknown output format \"%s\": use text or json.", output);
                return 2;
        }
        if (enforce & ~FIRMWARE_PCRS) {
                log_error("--enforce takes firmware PCRs (0-3, 5-7); predicted PCRs are enforced anyway.");
                return 2;
        }
        if (enforce && !log_path) {
                log_error("--enforce needs --firmware-log: firmware PCRs are not predicted from the image.");
                return 2;
        }
        r = pcr11_parse_phases(phases_arg, &phases, &e);
        if (r < 0) {
                log_error("Invalid --phases \"%s\": %s", phases_arg, errmsg_str(&e));
                return 2;
        }
        bopts.phases = &phases;

        if (measure_load_pe(uki, &data, &size, &pe) < 0)
                return 1;
        /* A different stub measures differently: refuse to guess. */
        r = uki_stub_version(pe, version, sizeof(version), &major, &e);
        if (r < 0 && !assume) {
                log_error("Cannot tell which systemd-stub \"%s\" carries: %s (use --stub-version %u to assume it)",
                          uki, errmsg_str(&e), PCR11_STUB_VERSION);
                return 1;
        }
        if (r >= 0 && major != PCR11_STUB_VERSION && !assume) {
                log_error("\"%s\" carries systemd-stub %s, but only %u's measurements are modelled "
                          "(use --stub-version %u to assume them anyway).",
                          uki, version, PCR11_STUB_VERSION, PCR11_STUB_VERSION);
                return 1;
        }

        pred = malloc(sizeof(*pred));
        if (!pred)
                return log_oom(), 1;
        r = bootpcr_predict(pe, &bopts, pred, &e);
        if (r < 0) {
                log_error_errno(r, "Cannot predict the PCRs of \"%s\": %s", uki, errmsg_str(&e));
                return 1;
        }
        if (log_path && firmware_pcrs(log_path, fw) < 0)
                return 1;

        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++) {
                if (pred->predicted & (UINT32_C(1) << i)) {
                        policy.pcr[i].set = true;
                        memcpy(policy.pcr[i].expected, pred->pcr[i], 32);
                } else if (log_path && (FIRMWARE_PCRS & (1u << i))) {
                        policy.pcr[i].set = true;
                        policy.pcr[i].warn_only = !(enforce & (1u << i));
                        memcpy(policy.pcr[i].expected, fw[i], 32);
                }
                if (warn_only & (UINT32_C(1) << i)) {
                        if (!policy.pcr[i].set) {
                                log_error("--warn-only: PCR %u is not in the policy (predicted: 4, 9, 11, 12, 13; "
                                          "0-3 and 5-7 with --firmware-log).",
                                          i);
                                return 2;
                        }
                        policy.pcr[i].warn_only = true;
                }
        }
        r = policy_to_json(&policy, &json);
        if (r < 0) {
                log_error_errno(r, "Cannot serialize the policy: %m");
                return 1;
        }

        if (streq(output, "json"))
                fputs(json, stdout);
        else {
                pcr11_phases_to_string(&phases, phase_str, sizeof(phase_str));
                printf("# %s: systemd-stub %s, phases \"%s\", booted by OVMF after %u failed boot option(s), "
                       "Secure Boot %s\n",
                       uki, version[0] ? version : "(assumed)", phase_str, bopts.failed_boot_attempts,
                       bopts.secure_boot ? "on" : "off");
                printf("# %-3s %-34s %-10s %-64s %s\n", "PCR", "TYPE", "SIZE", "DIGEST", "WHAT");
                for (size_t i = 0; i < pred->n_events; i++) {
                        const struct bootpcr_event *ev = &pred->events[i];
                        const char *t = eventlog_type_to_string(ev->type);
                        hex_encode_buf(ev->digest, 32, hex);
                        printf("# %-3u %-34s %-10llu %s %s\n", ev->pcr, t ? t : "?", (unsigned long long) ev->size,
                               hex, ev->what);
                }
                for (unsigned i = 0; i < POLICY_PCR_COUNT; i++) {
                        if (!policy.pcr[i].set)
                                continue;
                        hex_encode_buf(policy.pcr[i].expected, 32, hex);
                        printf("%u:sha256=%s%s\n", i, hex,
                               !(pred->predicted & (UINT32_C(1) << i)) ? " (from the firmware log)"
                               : policy.pcr[i].warn_only             ? " (warn-only)"
                                                                     : "");
                }
        }
        if (policy_path) {
                r = write_file_atomic(policy_path, json, strlen(json), 0644);
                if (r < 0) {
                        log_error_errno(r, "Cannot write \"%s\": %m", policy_path);
                        return 1;
                }
        }
        return 0;
}
