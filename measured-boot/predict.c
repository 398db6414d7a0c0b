/* SPDX-License-Identifier: Apache-2.0 */
/* arca-measure predict --uki FILE [--phases LIST] [--warn-only PCRS] [-o text|json] [--policy FILE] */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "measure.h"
#include "pcr11.h"
#include "policy.h"
#include "uki.h"

static void help(void) {
        printf("Usage: arca-measure predict --uki FILE [--phases LIST] [--warn-only PCRS]\n"
               "                            [-o text|json] [--policy FILE] [--stub-version N]\n\n"
               "Predict the PCRs that booting the UKI produces and write them as a measurement\n"
               "policy. Predicted so far: PCR 11 as systemd-stub %u measures the UKI's sections,\n"
               "followed by the boot phases that systemd-pcrphase measures.\n\n"
               "  --uki FILE           the unified kernel image\n"
               "  --phases LIST        boot phases measured before the quote, ':'-separated in\n"
               "                       systemd-measure's syntax, e.g.\n"
               "                       enter-initrd:leave-initrd:sysinit:ready (default: none)\n"
               "  --warn-only PCRS     comma-separated PCR indices to mark warnOnly in the policy\n"
               "  -o, --output FORMAT  text (default: each measurement, then 11:sha256=HEX) or\n"
               "                       json (the policy)\n"
               "  --policy FILE        also write the policy to FILE\n"
               "  --stub-version N     model systemd-stub N even though the UKI's stub says\n"
               "                       otherwise (only %u is supported)\n",
               PCR11_STUB_VERSION, PCR11_STUB_VERSION);
}

static int parse_pcr_list(const char *s, bool ret[POLICY_PCR_COUNT]) {
        while (*s) {
                char *end;
                unsigned long v;

                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = strtoul(s, &end, 10);
                if (v >= POLICY_PCR_COUNT || (*end && *end != ','))
                        return -EINVAL;
                ret[v] = true;
                s = *end ? end + 1 : end;
        }
        return 0;
}

static const char *event_kind(enum pcr11_event_kind k) {
        switch (k) {
        case PCR11_EVENT_SECTION_NAME:
                return "section-name";
        case PCR11_EVENT_SECTION_DATA:
                return "section-data";
        default:
                return "phase";
        }
}

int verb_predict(int argc, char **argv) {
        enum { ARG_UKI = 0x100, ARG_PHASES, ARG_WARN_ONLY, ARG_POLICY, ARG_STUB_VERSION };
        static const struct option opts[] = {
                { "uki", required_argument, NULL, ARG_UKI },
                { "phases", required_argument, NULL, ARG_PHASES },
                { "warn-only", required_argument, NULL, ARG_WARN_ONLY },
                { "output", required_argument, NULL, 'o' },
                { "policy", required_argument, NULL, ARG_POLICY },
                { "stub-version", required_argument, NULL, ARG_STUB_VERSION },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ struct pcr11_prediction *pred = NULL;
        _cleanup_free_ struct pe_image *pe = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *json = NULL;
        const char *uki = NULL, *phases_arg = "", *output = "text", *policy_path = NULL;
        struct pcr11_section sections[PCR11_MAX_SECTIONS];
        bool warn_only[POLICY_PCR_COUNT] = {};
        struct pcr11_phases phases;
        struct policy policy = {};
        unsigned major = 0, assume = 0;
        char version[64] = "", hex[65], phase_str[PCR11_MAX_PHASES * (PCR11_PHASE_MAX_LEN + 1) + 1];
        struct errmsg e = {};
        size_t size, n;
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
                        if (parse_pcr_list(optarg, warn_only) < 0) {
                                log_error("Invalid --warn-only \"%s\": expected PCR indices 0-23 separated by commas.",
                                          optarg);
                                return 2;
                        }
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
        r = pcr11_parse_phases(phases_arg, &phases, &e);
        if (r < 0) {
                log_error("Invalid --phases \"%s\": %s", phases_arg, errmsg_str(&e));
                return 2;
        }

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

        r = pcr11_uki_sections(pe, sections, &n, &e);
        if (r < 0) {
                log_error("\"%s\": %s", uki, errmsg_str(&e));
                return 1;
        }
        pred = malloc(sizeof(*pred));
        if (!pred) {
                (void) log_oom();
                return 1;
        }
        r = pcr11_predict(sections, n, &phases, pred, &e);
        if (r < 0) {
                log_error_errno(r, "Cannot predict PCR 11 of \"%s\": %s", uki, errmsg_str(&e));
                return 1;
        }

        policy.pcr[PCR11_INDEX].set = true;
        memcpy(policy.pcr[PCR11_INDEX].expected, pred->value, 32);
        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++)
                if (warn_only[i]) {
                        if (!policy.pcr[i].set) {
                                log_error("--warn-only: PCR %u is not predicted (predicted: 11).", i);
                                return 2;
                        }
                        policy.pcr[i].warn_only = true;
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
                printf("# %s: systemd-stub %s, phases \"%s\"\n", uki, version[0] ? version : "(assumed)",
                       phase_str);
                printf("# PCR EVENT        WHAT          SIZE       DIGEST\n");
                for (size_t i = 0; i < pred->n_events; i++) {
                        const struct pcr11_event *ev = &pred->events[i];
                        hex_encode_buf(ev->digest, 32, hex);
                        printf("# %-3u %-12s %-13s %-10llu %s\n", PCR11_INDEX, event_kind(ev->kind), ev->what,
                               (unsigned long long) ev->size, hex);
                }
                hex_encode_buf(pred->value, 32, hex);
                printf("%u:sha256=%s\n", PCR11_INDEX, hex);
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
