/* SPDX-License-Identifier: Apache-2.0 */
#include "pcr11.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "openssl-util.h"

/* systemd 252, src/fundamental/tpm-pcr.h: enum UnifiedSection. */
static const struct {
        const char *name;
        bool measured;
} stub_sections[] = {
        { ".linux", true }, { ".osrel", true }, { ".cmdline", true }, { ".initrd", true },
        { ".splash", true }, { ".dtb", true },  { ".pcrsig", false }, { ".pcrpkey", true },
};

/* The words systemd 252's units pass to systemd-pcrphase. */
static const char *const known_phases[] = {
        "enter-initrd", "leave-initrd", "sysinit", "ready", "shutdown", "final",
};

const char *pcr11_stub_section(size_t i, bool *ret_measured) {
        if (i >= ELEMENTSOF(stub_sections))
                return NULL;
        if (ret_measured)
                *ret_measured = stub_sections[i].measured;
        return stub_sections[i].name;
}

bool pcr11_section_measured(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(stub_sections); i++)
                if (streq(name, stub_sections[i].name))
                        return stub_sections[i].measured;
        return false;
}

int pcr11_uki_sections(const struct pe_image *uki, struct pcr11_section *ret, size_t *ret_n, struct errmsg *e) {
        size_t n = 0;
        bool have_linux = false;

        for (size_t i = 0; i < ELEMENTSOF(stub_sections); i++) {
                const char *name = stub_sections[i].name;
                const struct pe_section *found = NULL;
                const uint8_t *data;
                size_t fsize, vsize;

                /* Prefix comparison, last match wins: exactly the stub's
                 * locate_sections(). */
                for (unsigned k = 0; k < uki->n_sections; k++)
                        if (memcmp(uki->sections[k].raw_name, name, strlen(name)) == 0)
                                found = &uki->sections[k];
                if (!found || found->virtual_size == 0)
                        continue;
                if (i == 0)
                        have_linux = true;
                if (!stub_sections[i].measured)
                        continue;
                pe_section_content(uki, found, &data, &fsize, &vsize);
                ret[n++] = (struct pcr11_section) {
                        .name = name, .data = data, .file_size = fsize, .size = vsize,
                };
        }
        if (!have_linux)
                return errmsg_set(e, EBADMSG, "no .linux section: not a UKI (systemd-stub would refuse to boot it)");
        *ret_n = n;
        return 0;
}

int pcr11_parse_phases(const char *spec, struct pcr11_phases *ret, struct errmsg *e) {
        struct pcr11_phases p = {};
        const char *s = spec;

        while (*s) {
                size_t len = strcspn(s, ":");
                bool known = false;

                if (len > 0) {
                        for (size_t i = 0; i < ELEMENTSOF(known_phases); i++)
                                if (strlen(known_phases[i]) == len && memcmp(known_phases[i], s, len) == 0)
                                        known = true;
                        if (!known)
                                return errmsg_set(e, EINVAL,
                                                  "unknown boot phase \"%.*s\" (known: enter-initrd, "
                                                  "leave-initrd, sysinit, ready, shutdown, final)",
                                                  (int) (len > 64 ? 64 : len), s);
                        if (p.n >= PCR11_MAX_PHASES)
                                return errmsg_set(e, EINVAL, "more than %u boot phases", PCR11_MAX_PHASES);
                        memcpy(p.word[p.n], s, len);
                        p.word[p.n][len] = 0;
                        p.n++;
                }
                s += len;
                if (*s == ':')
                        s++;
        }
        *ret = p;
        return 0;
}

void pcr11_phases_to_string(const struct pcr11_phases *p, char *buf, size_t size) {
        size_t used = 0;

        if (size == 0)
                return;
        buf[0] = 0;
        for (size_t i = 0; i < p->n; i++) {
                int k = snprintf(buf + used, size - used, "%s%s", i ? ":" : "", p->word[i]);
                if (k < 0 || (size_t) k >= size - used)
                        return;
                used += (size_t) k;
        }
}

int pcr_extend_sha256(uint8_t pcr[32], const uint8_t digest[32]) {
        uint8_t buf[64];

        memcpy(buf, pcr, 32);
        memcpy(buf + 32, digest, 32);
        return sha256(buf, sizeof(buf), pcr);
}

static int digest_section(const struct pcr11_section *s, uint8_t out[32]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        static const uint8_t zeros[4096];
        size_t left;

        if (!ctx)
                return -ENOMEM;
        if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
            (s->file_size > 0 && !EVP_DigestUpdate(ctx, s->data, s->file_size)))
                return openssl_errno(-EIO);
        for (left = s->size - s->file_size; left > 0;) {
                size_t k = left < sizeof(zeros) ? left : sizeof(zeros);
                if (!EVP_DigestUpdate(ctx, zeros, k))
                        return openssl_errno(-EIO);
                left -= k;
        }
        if (!EVP_DigestFinal_ex(ctx, out, NULL))
                return openssl_errno(-EIO);
        return 0;
}

static int add_event(struct pcr11_prediction *p, enum pcr11_event_kind kind, const char *what, uint64_t size,
                     const uint8_t digest[32]) {
        struct pcr11_event *ev;
        int r;

        if (p->n_events >= PCR11_MAX_EVENTS)
                return -E2BIG;
        ev = &p->events[p->n_events++];
        ev->kind = kind;
        snprintf(ev->what, sizeof(ev->what), "%s", what);
        ev->size = size;
        memcpy(ev->digest, digest, 32);
        r = pcr_extend_sha256(p->value, digest);
        if (r < 0)
                return r;
        memcpy(ev->pcr, p->value, 32);
        return 0;
}

int pcr11_predict(const struct pcr11_section *sections, size_t n_sections, const struct pcr11_phases *phases,
                  struct pcr11_prediction *ret, struct errmsg *e) {
        _cleanup_free_ struct pcr11_prediction *p = NULL;
        uint8_t d[32];
        int r;

        if (n_sections > PCR11_MAX_SECTIONS)
                return errmsg_set(e, EINVAL, "%zu sections, at most %u", n_sections, PCR11_MAX_SECTIONS);
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;

        for (size_t i = 0; i < n_sections; i++) {
                const struct pcr11_section *s = &sections[i];
                size_t len = strlen(s->name);

                if (len == 0 || len > 8 || s->file_size > s->size)
                        return errmsg_set(e, EINVAL, "section %zu: bad name or sizes", i);
                r = sha256(s->name, len + 1, d); /* the NUL counts */
                if (r >= 0)
                        r = add_event(p, PCR11_EVENT_SECTION_NAME, s->name, len + 1, d);
                if (r >= 0)
                        r = digest_section(s, d);
                if (r >= 0)
                        r = add_event(p, PCR11_EVENT_SECTION_DATA, s->name, s->size, d);
                if (r < 0)
                        return errmsg_set(e, r, "section %s: cannot compute its measurement", s->name);
        }
        for (size_t i = 0; phases && i < phases->n; i++) {
                size_t len = strnlen(phases->word[i], sizeof(phases->word[i]));
                r = sha256(phases->word[i], len, d); /* no NUL */
                if (r >= 0)
                        r = add_event(p, PCR11_EVENT_PHASE, phases->word[i], len, d);
                if (r < 0)
                        return errmsg_set(e, r, "phase %s: cannot compute its measurement", phases->word[i]);
        }
        memcpy(ret, p, sizeof(*p));
        return 0;
}
