/* SPDX-License-Identifier: Apache-2.0 */
#include "keys.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <errno.h>
#include <openssl/sha.h>
#include <string.h>

#include "hkdf.h"
#include "secret.h"
#include "tpm.h"

int key_derive(const uint8_t master[KEY_SIZE], const uint8_t salt[KEY_SIZE], const char *id,
               uint8_t ret[KEY_SIZE]) {
        char info[128];
        int n;

        n = snprintf(info, sizeof(info), "key-%s", id);
        if (n < 0 || (size_t) n >= sizeof(info))
                return -EINVAL;
        return hkdf_sha256(master, KEY_SIZE, salt, KEY_SIZE, info, (size_t) n, ret, KEY_SIZE);
}

int key_disk(const uint8_t master[KEY_SIZE], const uint8_t salt[KEY_SIZE], const char *luks_uuid,
             uint8_t ret[KEY_SIZE]) {
        char lower[37];

        if (!luks_uuid || strlen(luks_uuid) != 36)
                return -EINVAL;
        for (size_t i = 0; i < 36; i++) {
                char c = luks_uuid[i];
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? c != '-' : !isxdigit((unsigned char) c))
                        return -EINVAL;
                lower[i] = (char) tolower((unsigned char) c);
        }
        lower[36] = 0;
        return key_derive(master, salt, lower, ret);
}

int key_measurement_secret(const uint8_t master[KEY_SIZE], const uint8_t salt[KEY_SIZE], uint8_t ret[KEY_SIZE]) {
        return key_derive(master, salt, "measurementSecret", ret);
}

int key_cluster_id(const uint8_t measurement_secret[KEY_SIZE], const uint8_t measurement_salt[KEY_SIZE],
                   uint8_t ret[KEY_SIZE]) {
        return key_derive(measurement_secret, measurement_salt, "clusterID", ret);
}

int node_lock_is_free(struct tpm_ctx *t, struct errmsg *e) {
        static const uint8_t zero[TPM_DIGEST_SIZE];
        uint8_t pcrs[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        int r;

        r = tpm_pcr_read(t, pcrs, e);
        if (r < 0)
                return r;
        return memcmp(pcrs[NODE_LOCK_PCR], zero, sizeof(zero)) == 0;
}

int node_lock_value(const uint8_t cluster_id[KEY_SIZE], uint8_t ret[32]) {
        uint8_t buf[64] = {};

        if (!SHA256(cluster_id, KEY_SIZE, buf + 32))
                return -EIO;
        if (!SHA256(buf, sizeof(buf), ret))
                return -EIO;
        return 0;
}

int node_lock_take(struct tpm_ctx *t, const uint8_t cluster_id[KEY_SIZE], struct errmsg *e) {
        int r;

        r = node_lock_is_free(t, e);
        if (r < 0)
                return r;
        if (r == 0)
                return errmsg_set(e, EALREADY,
                                  "node lock taken: PCR %d is not zero, this node was initialized or joined already",
                                  NODE_LOCK_PCR);
        return tpm_pcr_event(t, NODE_LOCK_PCR, cluster_id, KEY_SIZE, e);
}
