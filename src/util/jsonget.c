// SPDX-License-Identifier: Apache-2.0
#include <math.h>

#include "util/jsonget.h"

json_object *jsonget__obj(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

const char *jsonget__str(json_object *o, const char *key)
{
	json_object *v = jsonget__obj(o, key);
	const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;

	return s && *s ? s : NULL;
}

bool jsonget__num(json_object *o, const char *key, double *out)
{
	json_object *v = jsonget__obj(o, key);

	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return false;
	*out = json_object_get_double(v);
	return isfinite(*out);
}

uint64_t jsonget__u64(json_object *o, const char *key)
{
	json_object *v = jsonget__obj(o, key);

	return json_object_is_type(v, json_type_int) ? json_object_get_uint64(v) : 0;
}
