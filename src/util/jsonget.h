/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Typed reads of a json-c object that tolerate absent keys and wrong types: span lines come
 * from files and sockets, so a missing or odd field is a blank, never a crash.
 */
#ifndef TOKENTAP_UTIL_JSONGET_H
#define TOKENTAP_UTIL_JSONGET_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

/* The member `key` of `o`, or NULL (also when o is NULL or not an object). */
json_object *jsonget__obj(json_object *o, const char *key);
/* A non-empty string member, or NULL. */
const char *jsonget__str(json_object *o, const char *key);
/* A finite number member (int or double) into *out; false when absent or not a number. */
bool jsonget__num(json_object *o, const char *key, double *out);
/* An integer member, or 0. */
uint64_t jsonget__u64(json_object *o, const char *key);

#endif
