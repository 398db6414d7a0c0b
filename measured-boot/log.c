/* SPDX-License-Identifier: Apache-2.0 */
/* arca-measure log [-o text|json] [-q] [--policy FILE [--signature SIG --pubkey PEM]] [--pcrs FILE]
 *                  [--uki FILE [--phases LIST]] LOG */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootpcr.h"
#include "encoding.h"
#include "eventlog.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "measure.h"
#include "policy.h"

#define PCRS_FILE_MAX_SIZE 8192u

static void help(void) {
        printf("Usage: arca-measure log [OPTIONS] LOG\n\n"
               "Print a TCG crypto-agile event log (/sys/kernel/security/tpm0/binary_bios_measurements)\n"
               "one event per line (index, PCR, type, SHA-256 digest, decoded description), then\n"
               "the PCR values that replaying it produces. With --policy, --pcrs or --uki, explain\n"
               "where the log departs from them; the exit status is then 1 on any mismatch.\n\n"
               "  -o, --output FORMAT  text (default) or json (one JSON object per line: the\n"
               "                       events, then {\"replayed\": ...})\n"
               "  -q, --quiet          do not list the events\n"
               "  --policy FILE        a measurement policy: for each PCR that differs, which\n"
               "                       events produce the unexpected value\n"
               "  --signature SIG      verify the policy's detached signature first (with --pubkey)\n"
               "  --pubkey PEM         the owner's ECDSA P-256 public key\n"
               "  --pcrs FILE          the PCR values the machine reported (SHA-256): \"N HEX\"\n"
               "                       per line or tpm2_pcrread's output. Does the log\n"
               "                       reproduce them?\n"
               "  --uki FILE           compare the log event by event with what booting this UKI\n"
               "                       measures (arca-measure predict): names the first event\n"
               "                       of each PCR that differs\n"
               "  --phases LIST        boot phases for --uki (see arca-measure predict)\n"
               "  --secure-boot        for --uki: the machine booted with Secure Boot on\n");
}

/* "N HEX" per line (as /sys/class/tpm/tpm0/pcr-sha256/N gives them), or
 * the output of `tpm2_pcrread` ("sha256:" then "  N : 0xHEX"; other banks'
 * sections are skipped). */
static int load_pcrs_file(const char *path, uint8_t out[POLICY_PCR_COUNT][32]) {
        _cleanup_free_ char *buf = NULL;
        bool seen[POLICY_PCR_COUNT] = {}, in_sha256 = true;
        unsigned line = 0;
        size_t n;
        char *s, *save = NULL;
        int r;

        r = read_full_file(path, PCRS_FILE_MAX_SIZE, &buf, &n);
        if (r < 0)
                return log_error_errno(r, "Cannot read \"%s\": %m", path);
        for (s = strtok_r(buf, "\n", &save); s; s = strtok_r(NULL, "\n", &save)) {
                unsigned long i;
                char *end, *hex;
                size_t len;

                line++;
                s[strcspn(s, "\r")] = 0;
                s += strspn(s, " \t");
                len = strlen(s);
                if (len == 0)
                        continue;
                if (s[len - 1] == ':' && (s[0] < '0' || s[0] > '9')) { /* a bank header */
                        in_sha256 = streq(s, "sha256:");
                        continue;
                }
                if (!in_sha256)
                        continue;
                i = strtoul(s, &end, 10);
                if (end == s || (*end != ' ' && *end != ':') || i >= POLICY_PCR_COUNT)
                        return log_error_errno(-EBADMSG, "\"%s\" line %u: expected \"N HEX\" with N 0-23.", path,
                                               line);
                hex = end + strspn(end, " :");
                if (hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X'))
                        hex += 2;
                if (hex_decode_exact(hex, out[i], 32) < 0)
                        return log_error_errno(-EBADMSG, "\"%s\" line %u: PCR %lu is not 64 hex digits.", path,
                                               line, i);
                if (seen[i])
                        return log_error_errno(-EBADMSG, "\"%s\" line %u: PCR %lu given twice.", path, line, i);
                seen[i] = true;
        }
        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++)
                if (!seen[i])
                        return log_error_errno(-EBADMSG, "\"%s\": PCR %u is missing (SHA-256 bank).", path, i);
        return 0;
}

static const char *type_name(uint32_t type, char buf[16]) {
        const char *t = eventlog_type_to_string(type);
        if (t)
                return t;
        snprintf(buf, 16, "0x%08x", type);
        return buf;
}

static const char *check_name(enum eventlog_data_check c) {
        switch (c) {
        case EVENTLOG_DATA_MATCHES:
                return "matches";
        case EVENTLOG_DATA_DIFFERS:
                return "differs";
        default:
                return NULL;
        }
}

static int print_event(const struct eventlog *l, size_t i, bool json, const char *indent) {
        const struct eventlog_event *ev = &l->events[i];
        const struct eventlog_digest *d = eventlog_event_digest(ev, EVENTLOG_ALG_SHA256);
        _cleanup_free_ char *desc = NULL;
        const char *check = check_name(eventlog_event_check_data(ev));
        char tbuf[16], hex[2 * EVENTLOG_MAX_DIGEST_SIZE + 1];
        int r;

        r = eventlog_event_describe(ev, &desc);
        if (r < 0)
                return log_oom();
        if (json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                json_object *digests = json_object_new_object();

                if (!o || json_add(o, "digests", digests) < 0)
                        return log_oom();
                if (json_add_int(o, "index", (int64_t) ev->index) < 0 || json_add_int(o, "offset", (int64_t) ev->offset) < 0 ||
                    json_add_int(o, "pcr", ev->pcr) < 0 ||
                    json_add_string(o, "type", type_name(ev->type, tbuf)) < 0 ||
                    json_add_int(o, "typeValue", ev->type) < 0 || json_add_bool(o, "extends", eventlog_event_extends(ev)) < 0 ||
                    json_add_string(o, "description", desc) < 0 ||
                    (check && json_add_string(o, "dataCheck", check) < 0))
                        return log_oom();
                for (unsigned k = 0; k < ev->n_digests; k++) {
                        const char *alg = eventlog_alg_to_string(ev->digests[k].alg);
                        char abuf[16];
                        if (!alg) {
                                snprintf(abuf, sizeof(abuf), "0x%04x", ev->digests[k].alg);
                                alg = abuf;
                        }
                        if (json_add_hex(digests, alg, ev->digests[k].value, ev->digests[k].size) < 0)
                                return log_oom();
                }
                printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                return 0;
        }
        if (d)
                hex_encode_buf(d->value, 32, hex);
        else
                snprintf(hex, sizeof(hex), "%-64s", "(no sha256)");
        printf("%s%-4zu %-3u %-32s %s %s%s%s\n", indent, ev->index, ev->pcr, type_name(ev->type, tbuf), hex, desc,
               check && streq(check, "differs") ? " [data does not match the digest]" : "",
               eventlog_event_extends(ev) ? "" : " [not extended]");
        return 0;
}

static void print_replayed(const struct eventlog_pcrs *p, bool json) {
        if (json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                json_object *banks = json_object_new_object();
                if (!o || json_add(o, "replayed", banks) < 0)
                        return (void) log_oom();
                for (unsigned b = 0; b < p->n_banks; b++) {
                        const char *alg = eventlog_alg_to_string(p->banks[b].alg);
                        json_object *v;
                        if (!p->banks[b].replayed || !alg)
                                continue;
                        v = json_object_new_object();
                        if (!v || json_add(banks, alg, v) < 0)
                                return (void) log_oom();
                        for (unsigned i = 0; i < EVENTLOG_PCR_COUNT; i++) {
                                char key[4];
                                snprintf(key, sizeof(key), "%u", i);
                                if (json_add_hex(v, key, p->banks[b].pcr[i], p->banks[b].size) < 0)
                                        return (void) log_oom();
                        }
                }
                printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                return;
        }
        const struct eventlog_bank *b = eventlog_pcrs_bank(p, EVENTLOG_ALG_SHA256);
        printf("# replayed (sha256)\n");
        for (unsigned i = 0; i < EVENTLOG_PCR_COUNT; i++) {
                char hex[65];
                hex_encode_buf(b->pcr[i], 32, hex);
                printf("%u:sha256=%s%s\n", i, hex, p->extended & (1u << i) ? "" : " (not extended)");
        }
}

static int explain_policy(const struct eventlog *l, const struct policy *pol, bool has_policy,
                          const uint8_t (*reported)[32]) {
        _cleanup_(eventlog_explanation_freep) struct eventlog_explanation *x = NULL;
        struct errmsg e = {};
        char hex[65], hex2[65];
        int r, bad = 0;

        r = eventlog_explain(l, pol, reported, &x, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot explain the log: %s", errmsg_str(&e));
        for (unsigned i = 0; i < EVENTLOG_PCR_COUNT; i++) {
                const struct eventlog_pcr_explanation *px = &x->pcr[i];

                if (px->reported_mismatch && i == 10 && px->n_events == 0)
                        printf("PCR 10: not in this log (it is IMA's: the kernel's IMA log records it)\n");
                else if (px->reported_mismatch) {
                        bad = 1;
                        hex_encode_buf(px->reported, 32, hex);
                        hex_encode_buf(px->replayed, 32, hex2);
                        printf("PCR %u: the log does not reproduce the reported value %s (it replays to %s)\n", i,
                               hex, hex2);
                        if (px->reported_at_start)
                                printf("  the reported value is the reset value: the machine measured none of "
                                       "the log's %zu event(s) of PCR %u\n",
                                       px->n_events, i);
                        else if (px->reported_after != EVENTLOG_NONE)
                                printf("  the reported value is reached after event #%zu: the log has events the "
                                       "machine did not measure\n",
                                       px->reported_after);
                        else
                                printf("  no prefix of the log produces it: events are missing from the log or "
                                       "were altered, or the PCR was extended after the log was read\n");
                }
                if (px->verdict != PCR_MISMATCH_ENFORCED && px->verdict != PCR_MISMATCH_WARN)
                        continue;
                if (px->verdict == PCR_MISMATCH_ENFORCED)
                        bad = 1;
                hex_encode_buf(pol->pcr[i].expected, 32, hex);
                hex_encode_buf(px->replayed, 32, hex2);
                printf("PCR %u: MISMATCH%s: the policy expects %s, the log replays to %s\n", i,
                       px->verdict == PCR_MISMATCH_WARN ? " (warn-only)" : "", hex, hex2);
                if (px->expected_at_start || px->expected_after != EVENTLOG_NONE) {
                        bool after = px->expected_at_start;
                        printf("  the expected value is %s; these events are not in the policy:\n",
                               px->expected_at_start ? "the reset value (no measurements)"
                                                     : "reached part-way through the log");
                        for (size_t k = 0; k < px->n_events; k++) {
                                if (after && print_event(l, px->events[k], false, "    #") < 0)
                                        return -ENOMEM;
                                if (px->events[k] == px->expected_after)
                                        after = true;
                        }
                } else {
                        printf("  no prefix of the log produces it: one of these events differs from what the "
                               "policy was made from (--uki names which):\n");
                        for (size_t k = 0; k < px->n_events; k++)
                                if (print_event(l, px->events[k], false, "    #") < 0)
                                        return -ENOMEM;
                }
        }
        if (!bad && !x->n_warn_mismatch && has_policy)
                printf("policy: every PCR of the policy matches the log%s\n",
                       reported ? ", and the log reproduces the reported values" : "");
        else if (!bad && reported)
                printf("the log reproduces the reported values\n");
        return bad;
}

static int compare_uki(const struct eventlog *l, const char *uki, const char *phases_arg, bool secure_boot) {
        _cleanup_free_ struct bootpcr_prediction *pred = NULL;
        _cleanup_free_ struct pe_image *pe = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        struct bootpcr_options opts = {};
        struct pcr11_phases phases;
        struct errmsg e = {};
        size_t size;
        int r, bad = 0;

        r = pcr11_parse_phases(phases_arg, &phases, &e);
        if (r < 0)
                return log_error_errno(r, "Invalid --phases \"%s\": %s", phases_arg, errmsg_str(&e));
        opts.phases = &phases;
        opts.secure_boot = secure_boot;
        r = measure_load_pe(uki, &data, &size, &pe);
        if (r < 0)
                return r;
        pred = malloc(sizeof(*pred));
        if (!pred)
                return log_oom();
        r = bootpcr_predict(pe, &opts, pred, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot predict the PCRs of \"%s\": %s", uki, errmsg_str(&e));

        for (unsigned pcr = 0; pcr < BOOTPCR_COUNT; pcr++) {
                size_t k = 0, n_log = 0;
                bool differs = false;

                if (!(pred->predicted & (1u << pcr)))
                        continue;
                for (size_t i = 1; i < l->n_events && !differs; i++) {
                        const struct eventlog_event *ev = &l->events[i];
                        const struct eventlog_digest *d;
                        char hex[65], hex2[65];

                        if (ev->pcr != pcr || !eventlog_event_extends(ev))
                                continue;
                        n_log++;
                        while (k < pred->n_events && pred->events[k].pcr != pcr)
                                k++;
                        d = eventlog_event_digest(ev, EVENTLOG_ALG_SHA256);
                        hex_encode_buf(d->value, 32, hex);
                        if (k >= pred->n_events) {
                                printf("PCR %u: event #%zu is not among what booting \"%s\" measures:\n", pcr, i, uki);
                                differs = true;
                        } else if (memcmp(d->value, pred->events[k].digest, 32) != 0) {
                                hex_encode_buf(pred->events[k].digest, 32, hex2);
                                printf("PCR %u: event #%zu has %s, but booting \"%s\" measures %s there (%s, %llu "
                                       "bytes):\n",
                                       pcr, i, hex, uki, hex2, pred->events[k].what,
                                       (unsigned long long) pred->events[k].size);
                                differs = true;
                        }
                        if (differs && print_event(l, i, false, "    #") < 0)
                                return -ENOMEM;
                        k++;
                }
                if (!differs) {
                        while (k < pred->n_events && pred->events[k].pcr != pcr)
                                k++;
                        if (k < pred->n_events) {
                                printf("PCR %u: the log ends after %zu event(s); booting \"%s\" also measures %s\n",
                                       pcr, n_log, uki, pred->events[k].what);
                                differs = true;
                        }
                }
                if (differs)
                        bad = 1;
                else
                        printf("PCR %u: the log's %zu event(s) are what booting \"%s\" measures\n", pcr, n_log, uki);
        }
        return bad;
}

int verb_log(int argc, char **argv) {
        enum { ARG_POLICY = 0x100, ARG_SIG, ARG_PUBKEY, ARG_PCRS, ARG_UKI, ARG_PHASES, ARG_SECURE_BOOT };
        static const struct option opts[] = {
                { "output", required_argument, NULL, 'o' },
                { "quiet", no_argument, NULL, 'q' },
                { "policy", required_argument, NULL, ARG_POLICY },
                { "signature", required_argument, NULL, ARG_SIG },
                { "pubkey", required_argument, NULL, ARG_PUBKEY },
                { "pcrs", required_argument, NULL, ARG_PCRS },
                { "uki", required_argument, NULL, ARG_UKI },
                { "phases", required_argument, NULL, ARG_PHASES },
                { "secure-boot", no_argument, NULL, ARG_SECURE_BOOT },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        _cleanup_free_ struct eventlog_pcrs *pcrs = NULL;
        const char *output = "text", *policy_path = NULL, *sig = NULL, *pubkey = NULL, *pcrs_path = NULL,
                   *uki = NULL, *phases = "";
        uint8_t reported[POLICY_PCR_COUNT][32];
        struct policy pol;
        struct errmsg e = {};
        bool quiet = false, json, secure_boot = false;
        int c, r, ret = 0;

        optind = 0;
        while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) >= 0)
                switch (c) {
                case 'o':
                        output = optarg;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case ARG_POLICY:
                        policy_path = optarg;
                        break;
                case ARG_SIG:
                        sig = optarg;
                        break;
                case ARG_PUBKEY:
                        pubkey = optarg;
                        break;
                case ARG_PCRS:
                        pcrs_path = optarg;
                        break;
                case ARG_UKI:
                        uki = optarg;
                        break;
                case ARG_PHASES:
                        phases = optarg;
                        break;
                case ARG_SECURE_BOOT:
                        secure_boot = true;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        if (optind + 1 != argc) {
                log_error("arca-measure log needs exactly one LOG (see --help).");
                return 2;
        }
        if (!streq(output, "text") && !streq(output, "json")) {
                log_error("Unknown output format \"%s\": use text or json.", output);
                return 2;
        }
        json = streq(output, "json");
        if ((sig || pubkey) && (!sig || !pubkey || !policy_path)) {
                log_error("--signature and --pubkey go together, with --policy.");
                return 2;
        }
        if (json && (policy_path || pcrs_path || uki)) {
                log_error("--policy, --pcrs and --uki explain in text: use -o text.");
                return 2;
        }

        r = eventlog_load(argv[optind], &l, &e);
        if (r < 0) {
                log_error_errno(r, "Cannot read the event log \"%s\": %s", argv[optind], errmsg_str(&e));
                return 1;
        }
        pcrs = malloc(sizeof(*pcrs));
        if (!pcrs)
                return log_oom(), 1;
        r = eventlog_replay(l, pcrs, &e);
        if (r < 0) {
                log_error_errno(r, "Cannot replay the event log \"%s\": %s", argv[optind], errmsg_str(&e));
                return 1;
        }
        if (!quiet) {
                if (!json)
                        printf("#IDX PCR TYPE                             SHA256%58sDESCRIPTION\n", "");
                for (size_t i = 0; i < l->n_events; i++)
                        if (print_event(l, i, json, "") < 0)
                                return 1;
        }
        print_replayed(pcrs, json);

        if (pcrs_path && load_pcrs_file(pcrs_path, reported) < 0)
                return 1;
        if (policy_path) {
                r = policy_load(policy_path, sig, pubkey, &pol, &e);
                if (r < 0) {
                        log_error_errno(r, "Cannot load the policy: %s", errmsg_str(&e));
                        return 1;
                }
        } else
                pol = (struct policy) {};
        if (policy_path || pcrs_path) {
                r = explain_policy(l, &pol, policy_path != NULL, pcrs_path ? (const uint8_t(*)[32]) reported : NULL);
                if (r < 0)
                        return 1;
                ret |= r;
        }
        if (uki) {
                r = compare_uki(l, uki, phases, secure_boot);
                if (r < 0)
                        return 1;
                ret |= r;
        }
        return ret;
}
