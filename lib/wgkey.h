/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* WireGuard (Curve25519) key pairs, made fresh at every boot; the private
 * key never leaves the node. */

#include <stdint.h>

#include "validate.h"

#define WG_KEY_SIZE 32

/* Generate a key pair; the public key as base64 (what wg(8) prints). */
int wg_keypair_generate(uint8_t ret_private[WG_KEY_SIZE], char ret_public[WG_KEY_B64_SIZE]);
/* Public key of a private key. */
int wg_public_from_private(const uint8_t priv[WG_KEY_SIZE], char ret_public[WG_KEY_B64_SIZE]);
