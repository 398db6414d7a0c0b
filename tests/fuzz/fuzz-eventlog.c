/* SPDX-License-Identifier: Apache-2.0 */
/* The event log parser on arbitrary bytes; whatever it accepts goes
 * through the replay, the explanation against a policy and the decoding of
 * every event, whose invariants are checked. The corpus holds real OVMF
 * logs (tests/data/eventlog), built ones and malformed ones. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eventlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_event(const struct eventlog *l, const struct eventlog_event *ev, size_t *expect_offset) {
        char *s = NULL;

        if (ev->offset != *expect_offset || ev->size == 0 || ev->size > l->raw_size - ev->offset)
                abort();
        *expect_offset += ev->size;
        if (ev->pcr >= EVENTLOG_PCR_COUNT || ev->n_digests == 0 || ev->n_digests > EVENTLOG_MAX_ALGS)
                abort();
        if (ev->data < l->raw || ev->data_size > l->raw_size || ev->data + ev->data_size > l->raw + l->raw_size)
                abort();
        for (unsigned i = 0; i < ev->n_digests; i++)
                if (ev->digests[i].size == 0 || ev->digests[i].size > EVENTLOG_MAX_DIGEST_SIZE ||
                    ev->digests[i].value < l->raw ||
                    ev->digests[i].value + ev->digests[i].size > l->raw + l->raw_size)
                        abort();
        if (eventlog_event_describe(ev, &s) < 0)
                abort();
        /* One line, no control characters. */
        for (const char *c = s; *c; c++)
                if ((unsigned char) *c < 0x20 || *c == 0x7f)
                        abort();
        free(s);
        (void) eventlog_event_check_data(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct eventlog *l = NULL;
        struct eventlog_explanation *x = NULL;
        struct eventlog_pcrs *p;
        struct policy policy = {};
        uint8_t reported[EVENTLOG_PCR_COUNT][32] = {};
        struct errmsg e = {};
        size_t offset = 0;
        int r;

        r = eventlog_parse(data, size, &l, &e);
        if (r < 0) {
                /* Every refusal says why, and returns nothing. */
                if (!e.text[0] || l)
                        abort();
                return 0;
        }
        if (!l || l->n_events == 0 || l->n_events > EVENTLOG_MAX_EVENTS || l->raw_size != size ||
            l->n_algs == 0 || l->n_algs > EVENTLOG_MAX_ALGS)
                abort();
        for (size_t i = 0; i < l->n_events; i++)
                check_event(l, &l->events[i], &offset);
        if (offset != size)
                abort();

        p = malloc(sizeof(*p));
        if (!p)
                abort();
        memset(&e, 0, sizeof(e));
        r = eventlog_replay(l, p, &e);
        if (r < 0 && !e.text[0])
                abort();
        free(p);

        /* PCRs 0-7 enforced with zero values, 8-11 warn-only. */
        for (unsigned i = 0; i < 12; i++) {
                policy.pcr[i].set = true;
                policy.pcr[i].warn_only = i >= 8;
        }
        memset(&e, 0, sizeof(e));
        r = eventlog_explain(l, &policy, (const uint8_t(*)[32]) reported, &x, &e);
        if (r < 0 && (!e.text[0] || x))
                abort();
        if (r == 0)
                for (unsigned i = 0; i < EVENTLOG_PCR_COUNT; i++)
                        for (size_t k = 0; k < x->pcr[i].n_events; k++)
                                if (x->pcr[i].events[k] >= l->n_events || l->events[x->pcr[i].events[k]].pcr != i)
                                        abort();
        eventlog_explanation_free(x);
        eventlog_free(l);
        return 0;
}
