/* SPDX-License-Identifier: Apache-2.0 */
/* The event log replay against two independent references: a real TPM
 * (swtpm), into which the same digests are extended, bank by bank, and
 * tpm2_eventlog (tpm2-tools), which parses and replays the same files. The
 * logs are built byte by byte (tests/helpers/eventlog-builder.c) or come
 * from real OVMF boots (tests/data/eventlog). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <tss2_esys.h>
#include <tss2_tctildr.h>
#include <unistd.h>

#include "encoding.h"
#include "eventlog-builder.h"
#include "eventlog.h"
#include "macro.h"
#include "swtpm.h"

static const uint16_t all_banks[] = { EVENTLOG_ALG_SHA1, EVENTLOG_ALG_SHA256, EVENTLOG_ALG_SHA384,
                                      EVENTLOG_ALG_SHA512 };
static const char *const bank_names[] = { "sha1", "sha256", "sha384", "sha512" };
static const size_t bank_sizes[] = { 20, 32, 48, 64 };

static struct test_swtpm tpm;

static void setup(void) {
        int r;

        setenv("TSS2_LOG", "all+none", 1);
        r = test_swtpm_start(&tpm);
        if (r == -ENOENT)
                cr_skip_test("swtpm is not installed (package swtpm)");
        cr_assert_eq(r, 0, "swtpm did not start: %d", r);
}

static void teardown(void) {
        test_swtpm_stop(&tpm);
}

/* --- the TPM side ------------------------------------------------------------ */

struct esys {
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *ctx;
};

static void esys_open(struct esys *x) {
        cr_assert_eq(Tss2_TctiLdr_Initialize(tpm.tcti, &x->tcti), TSS2_RC_SUCCESS);
        cr_assert_eq(Esys_Initialize(&x->ctx, x->tcti, NULL), TSS2_RC_SUCCESS);
}

static void esys_close(struct esys *x) {
        Esys_Finalize(&x->ctx);
        Tss2_TctiLdr_Finalize(&x->tcti);
}

/* What firmware and the kernel do: TPM2_PCR_Extend with one digest per
 * bank, for every event of the log that extends. */
static void extend_log(const struct elb *b) {
        struct esys x;

        esys_open(&x);
        for (size_t i = 0; i < b->n_extends; i++) {
                TPML_DIGEST_VALUES v = { .count = b->n_algs };
                for (unsigned k = 0; k < b->n_algs; k++) {
                        v.digests[k].hashAlg = b->algs[k];
                        memcpy(&v.digests[k].digest, b->extends[i].digest[k], b->sizes[k]);
                }
                cr_assert_eq(Esys_PCR_Extend(x.ctx, ESYS_TR_PCR0 + b->extends[i].pcr, ESYS_TR_PASSWORD,
                                             ESYS_TR_NONE, ESYS_TR_NONE, &v),
                             TSS2_RC_SUCCESS, "extend PCR %u", b->extends[i].pcr);
        }
        esys_close(&x);
}

static void read_pcr(uint16_t alg, unsigned pcr, uint8_t *out, size_t size) {
        TPML_PCR_SELECTION sel = { .count = 1 };
        TPML_PCR_SELECTION *osel = NULL;
        TPML_DIGEST *values = NULL;
        UINT32 counter;
        struct esys x;

        sel.pcrSelections[0].hash = alg;
        sel.pcrSelections[0].sizeofSelect = 3;
        sel.pcrSelections[0].pcrSelect[pcr / 8] = (uint8_t) (1u << (pcr % 8));
        esys_open(&x);
        cr_assert_eq(Esys_PCR_Read(x.ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &counter, &osel, &values),
                     TSS2_RC_SUCCESS);
        cr_assert_eq(values->count, 1, "bank 0x%04x PCR %u not allocated", alg, pcr);
        cr_assert_eq(values->digests[0].size, size);
        memcpy(out, values->digests[0].buffer, size);
        Esys_Free(osel);
        Esys_Free(values);
        esys_close(&x);
}

/* Our replay equals the TPM's PCRs, every bank, PCRs 0-23. */
static void assert_replay_equals_tpm(const struct elb *b) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct eventlog_pcrs p;
        struct errmsg e = {};

        cr_assert_eq(eventlog_parse(b->buf, b->size, &l, &e), 0, "%s", e.text);
        cr_assert_eq(eventlog_replay(l, &p, &e), 0, "%s", e.text);
        for (unsigned k = 0; k < b->n_algs; k++) {
                const struct eventlog_bank *bank = eventlog_pcrs_bank(&p, b->algs[k]);
                cr_assert(bank && bank->replayed);
                for (unsigned i = 0; i < 24; i++) {
                        uint8_t v[64];
                        read_pcr(b->algs[k], i, v, b->sizes[k]);
                        cr_assert_arr_eq(bank->pcr[i], v, b->sizes[k], "bank 0x%04x PCR %u: replay differs from the TPM",
                                         b->algs[k], i);
                        /* And the builder's own reference agrees. */
                        cr_assert_arr_eq(b->ref[k][i], v, b->sizes[k]);
                }
        }
}

/* TPM2_Startup from locality 3 (as an H-CRTM/DRTM-less platform whose
 * firmware starts the TPM at locality 3): power-cycle the swtpm with
 * CMD_INIT on its control channel, then start it up at locality 3. */
static void restart_at_locality(uint8_t locality) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) (tpm.port + 1)) };
        const uint8_t init[8] = { 0, 0, 0, 2 /* CMD_INIT */, 0, 0, 0, 0 };
        uint8_t res[4];
        struct esys x;
        int fd;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        cr_assert_eq(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(write(fd, init, sizeof(init)), (ssize_t) sizeof(init));
        cr_assert_eq(read(fd, res, sizeof(res)), (ssize_t) sizeof(res));
        cr_assert_eq(res[0] | res[1] | res[2] | res[3], 0, "CMD_INIT failed");
        close(fd);

        esys_open(&x);
        cr_assert_eq(Tss2_Tcti_SetLocality(x.tcti, locality), TSS2_RC_SUCCESS);
        cr_assert_eq(Esys_Startup(x.ctx, TPM2_SU_CLEAR), TSS2_RC_SUCCESS);
        cr_assert_eq(Tss2_Tcti_SetLocality(x.tcti, 0), TSS2_RC_SUCCESS);
        esys_close(&x);
}

/* A log over every bank swtpm has and every PCR that locality 0 may
 * extend (17-22 are DRTM PCRs: they keep their reset value, all ones). */
static void build_busy_log(struct elb *b, uint8_t locality, bool no_action) {
        elb_init(b, all_banks, ELEMENTSOF(all_banks));
        if (locality != 0xff)
                elb_startup_locality(b, locality);
        for (uint32_t i = 0; i < 60; i++) {
                uint32_t pcr = i % 18 == 17 ? 23 : i % 18;
                char s[48];
                snprintf(s, sizeof(s), "measurement %u", i);
                elb_event_measured(b, pcr, i % 3 ? EV_IPL : EV_EFI_ACTION, s, strlen(s), s, strlen(s));
                if (no_action && i % 7 == 0)
                        elb_event(b, pcr, EV_NO_ACTION, "not extended", 12);
        }
        for (uint32_t pcr = 0; pcr < 8; pcr++)
                elb_event(b, pcr, EV_SEPARATOR, (const uint8_t[4]) {}, 4);
}

Test(eventlog_swtpm, replay_equals_tpm_every_bank, .init = setup, .fini = teardown) {
        struct elb *b = calloc(1, sizeof(*b));

        build_busy_log(b, 0xff, true);
        extend_log(b);
        assert_replay_equals_tpm(b);
        elb_free(b);
        free(b);
}

Test(eventlog_swtpm, startup_locality_3_equals_tpm, .init = setup, .fini = teardown) {
        struct elb *b = calloc(1, sizeof(*b));
        uint8_t v[32], want[32] = { [31] = 3 };

        restart_at_locality(3);
        read_pcr(EVENTLOG_ALG_SHA256, 0, v, 32);
        cr_assert_arr_eq(v, want, 32, "swtpm did not start at locality 3");
        build_busy_log(b, 3, true);
        extend_log(b);
        assert_replay_equals_tpm(b);
        elb_free(b);
        free(b);
}

/* --- tpm2_eventlog ----------------------------------------------------------- */

struct tel {
        bool have[4][24];
        uint8_t v[4][24][64];
};

/* Run tpm2_eventlog FILE and collect the "pcrs:" section of its YAML. */
static int run_tpm2_eventlog(const char *path, struct tel *t) {
        char cmd[600], line[512];
        int bank = -1, status;
        bool in_pcrs = false;
        FILE *f;

        memset(t, 0, sizeof(*t));
        snprintf(cmd, sizeof(cmd), "tpm2_eventlog '%s' 2>/dev/null", path);
        f = popen(cmd, "r");
        cr_assert_not_null(f);
        while (fgets(line, sizeof(line), f)) {
                unsigned pcr;
                char hex[200];

                if (streq(line, "pcrs:\n")) {
                        in_pcrs = true;
                        continue;
                }
                if (!in_pcrs)
                        continue;
                if (line[0] == ' ' && line[1] == ' ' && line[2] != ' ') {
                        bank = -1;
                        for (int k = 0; k < 4; k++)
                                if (strncmp(line + 2, bank_names[k], strlen(bank_names[k])) == 0 &&
                                    line[2 + strlen(bank_names[k])] == ':')
                                        bank = k;
                        continue;
                }
                if (bank >= 0 && sscanf(line, " %u : 0x%199[0-9a-f]", &pcr, hex) == 2 && pcr < 24) {
                        cr_assert_eq(strlen(hex), 2 * bank_sizes[bank], "%s", line);
                        cr_assert_eq(hex_decode_exact(hex, t->v[bank][pcr], bank_sizes[bank]), 0);
                        t->have[bank][pcr] = true;
                }
        }
        status = pclose(f);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void skip_without_tpm2_eventlog(void) {
        if (system("tpm2_eventlog --version >/dev/null 2>&1") != 0)
                cr_skip_test("tpm2_eventlog is not installed (package tpm2-tools)");
}

/* tpm2_eventlog accepts the file and every value it prints equals ours
 * (or, with semantics_of, those of another log); returns how many values
 * were compared. */
static unsigned assert_tpm2_eventlog_agrees_with(const char *path, const struct eventlog *semantics_of) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct eventlog_pcrs p;
        struct errmsg e = {};
        struct tel t;
        unsigned compared = 0;
        int rc;

        cr_assert_eq(eventlog_load(path, &l, &e), 0, "%s", e.text);
        cr_assert_eq(eventlog_replay(semantics_of ? semantics_of : l, &p, &e), 0, "%s", e.text);
        rc = run_tpm2_eventlog(path, &t);
        cr_assert_eq(rc, 0, "tpm2_eventlog %s exited with %d", path, rc);
        for (int k = 0; k < 4; k++) {
                const struct eventlog_bank *bank = eventlog_pcrs_bank(&p, all_banks[k]);
                for (unsigned i = 0; i < 24; i++) {
                        if (!t.have[k][i])
                                continue;
                        cr_assert_not_null(bank, "tpm2_eventlog has bank %s, we do not", bank_names[k]);
                        if (memcmp(bank->pcr[i], t.v[k][i], bank_sizes[k]) != 0)
                                return 0;
                        compared++;
                }
                /* It lists every PCR the log extends. */
                if (bank)
                        for (unsigned i = 0; i < 24; i++)
                                if (p.extended & (1u << i))
                                        cr_assert(t.have[k][i], "%s: tpm2_eventlog lacks %s PCR %u", path,
                                                  bank_names[k], i);
        }
        return compared;
}

static void write_log(const struct elb *b, char *path, size_t size, const char *name) {
        char dir[128];

        cr_assert_eq(test_tmpdir(dir, sizeof(dir)), 0);
        snprintf(path, size, "%s/%s", dir, name);
        cr_assert_eq(elb_write(b, path), 0);
}

static void remove_log(const char *path) {
        char dir[512];

        unlink(path);
        snprintf(dir, sizeof(dir), "%s", path);
        *strrchr(dir, '/') = 0;
        rmdir(dir);
}

Test(eventlog_tpm2_eventlog, agrees_on_built_logs) {
        struct elb *b = calloc(1, sizeof(*b));
        char path[512];

        skip_without_tpm2_eventlog();
        /* PCRs 0-16 and 23, four banks. */
        build_busy_log(b, 0xff, false);
        write_log(b, path, sizeof(path), "busy.bin");
        cr_assert_eq(assert_tpm2_eventlog_agrees_with(path, NULL), 4 * 18, "tpm2_eventlog disagrees on %s", path);
        remove_log(path);
        elb_free(b);
        free(b);
}

/* tpm2-tools 5.4 (bookworm) extends the digests of EV_NO_ACTION events
 * and ignores StartupLocality; the PFP specification says not to extend
 * them, and the TPM itself starts PCR 0 at the locality (both checked
 * against swtpm above). Either tpm2_eventlog agrees with us (a version
 * without these bugs) or it agrees with our replay of the same log in
 * which every EV_NO_ACTION but the Spec ID event is made an extending
 * event: then it differs from us in exactly those two ways. */
Test(eventlog_tpm2_eventlog, differs_only_where_tpm2_tools_deviates) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL, *as_extends = NULL;
        struct elb *b = calloc(1, sizeof(*b));
        struct errmsg e = {};
        char path[512];
        unsigned n;

        skip_without_tpm2_eventlog();
        build_busy_log(b, 3, true);
        write_log(b, path, sizeof(path), "noaction.bin");
        cr_assert_eq(eventlog_parse(b->buf, b->size, &l, &e), 0);
        for (size_t i = 1; i < l->n_events; i++)
                if (l->events[i].type == EV_NO_ACTION)
                        elb_poke32(b, l->events[i].offset + 4, EV_UNUSED);
        cr_assert_eq(eventlog_parse(b->buf, b->size, &as_extends, &e), 0);

        n = assert_tpm2_eventlog_agrees_with(path, NULL);
        if (n == 0)
                n = assert_tpm2_eventlog_agrees_with(path, as_extends);
        cr_assert_eq(n, 4 * 18, "tpm2_eventlog differs from us in more than EV_NO_ACTION and StartupLocality");
        remove_log(path);
        elb_free(b);
        free(b);
}

static void data_path(const char *name, char *buf, size_t size) {
        const char *d = getenv("ARCA_BUILD_DIR");

        if (d && *d)
                snprintf(buf, size, "%s/../tests/data/eventlog/%s", d, name);
        else
                snprintf(buf, size, "tests/data/eventlog/%s", name);
}

Test(eventlog_tpm2_eventlog, agrees_on_real_ovmf_logs) {
        char path[512];

        skip_without_tpm2_eventlog();
        /* PCRs 0-7, 9 and 11 in four banks. */
        data_path("ovmf-uki.bin", path, sizeof(path));
        cr_assert_eq(assert_tpm2_eventlog_agrees_with(path, NULL), 4 * 10, "tpm2_eventlog disagrees on %s", path);
        data_path("ovmf-uki-secureboot.bin", path, sizeof(path));
        cr_assert_eq(assert_tpm2_eventlog_agrees_with(path, NULL), 4 * 10, "tpm2_eventlog disagrees on %s", path);
}
