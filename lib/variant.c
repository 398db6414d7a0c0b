/* SPDX-License-Identifier: Apache-2.0 */
#include "variant.h"

#include <string.h>

#include "macro.h"

static const struct variant *const variants[] = {
        &variant_qemu_vtpm,
        NULL,
};

const struct variant *const *variant_all(void) {
        return variants;
}

const struct variant *variant_by_name(const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; variants[i]; i++)
                if (streq(variants[i]->name, name))
                        return variants[i];
        return NULL;
}

const struct variant *variant_by_oid(const char *oid) {
        if (!oid)
                return NULL;
        for (size_t i = 0; variants[i]; i++)
                if (streq(variants[i]->oid, oid))
                        return variants[i];
        return NULL;
}
