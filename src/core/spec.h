/* Internal: parsing of spec strings "name[:key=value,key=value,...]".
 * A comma-separated token without '=' continues the previous value, so that
 * "toeplitz:col=1,0.5,0.25" gives col = "1,0.5,0.25". Values may contain ':'
 * ("dense:file=C.h5:/C"). */
#ifndef CSDE_CORE_SPEC_H
#define CSDE_CORE_SPEC_H

#include <stddef.h>
#include "corrsde/status.h"

#define CSDE_SPEC_MAXKV 16

typedef struct {
  char name[64];
  size_t n;
  char *key[CSDE_SPEC_MAXKV];
  char *val[CSDE_SPEC_MAXKV];
  char buf[4096];
} csde_spec;

/* `what` names the thing being parsed in messages ("covariance spec"). */
int csde_spec_parse(const char *s, const char *what, csde_spec *sp, csde_err *err);
/* The value of key, or NULL. */
const char *csde_spec_get(const csde_spec *sp, const char *key);
/* Fail with CSDE_ESPEC on a key not in the NULL-terminated list `allowed`. */
int csde_spec_check_keys(const csde_spec *sp, const char *const *allowed, csde_err *err);
/* Parse key as a finite double (dflt if absent). */
int csde_spec_double(const csde_spec *sp, const char *key, double dflt, double *out,
                     csde_err *err);
/* Parse key as a positive integer (dflt if absent). */
int csde_spec_size(const csde_spec *sp, const char *key, size_t dflt, size_t *out,
                   csde_err *err);
/* Parse a whole string as a finite double; 0 on success. */
int csde_parse_double(const char *s, double *out);
/* Parse a comma/space separated list of finite doubles into a new array. Separators are
 * runs of blanks with at most one comma: an empty entry (",,", a comma first or last) is
 * CSDE_ESPEC, naming the entry. */
int csde_parse_double_list(const char *s, double **out, size_t *n, csde_err *err);

#endif
