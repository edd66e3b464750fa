#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "core/util.h"

int csde_parse_double(const char *s, double *out)
{
  char *end;
  if (!s || !*s) return -1;
  errno = 0;
  double v = strtod(s, &end);
  while (*end == ' ' || *end == '\t') end++;
  if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

int csde_spec_parse(const char *s, const char *what, csde_spec *sp, csde_err *err)
{
  memset(sp, 0, sizeof *sp);
  if (!s || !*s) return csde_err_set(err, CSDE_ESPEC, "empty %s", what);
  if (strlen(s) >= sizeof sp->buf)
    return csde_err_set(err, CSDE_ESPEC, "%s is too long (%zu characters, at most %zu)",
                        what, strlen(s), sizeof sp->buf - 1);
  const char *colon = strchr(s, ':');
  size_t nlen = colon ? (size_t)(colon - s) : strlen(s);
  if (nlen == 0 || nlen >= sizeof sp->name)
    return csde_err_set(err, CSDE_ESPEC, "%s '%s' has no name before ':'", what, s);
  memcpy(sp->name, s, nlen);
  sp->name[nlen] = '\0';
  if (!colon) return CSDE_SUCCESS;
  strcpy(sp->buf, colon + 1);
  if (!sp->buf[0]) return CSDE_SUCCESS;
  /* Split on commas; tokens without '=' glue back onto the previous value. */
  char *p = sp->buf;
  while (p) {
    char *comma = strchr(p, ',');
    if (comma) *comma = '\0';
    char *eq = strchr(p, '=');
    if (eq) {
      if (sp->n == CSDE_SPEC_MAXKV)
        return csde_err_set(err, CSDE_ESPEC, "%s '%s' has too many parameters", what, s);
      *eq = '\0';
      if (!*p)
        return csde_err_set(err, CSDE_ESPEC, "%s '%s' has a parameter with no name", what,
                            s);
      for (size_t i = 0; i < sp->n; i++)
        if (!strcmp(sp->key[i], p))
          return csde_err_set(err, CSDE_ESPEC, "%s '%s' gives '%s' twice", what, s, p);
      sp->key[sp->n] = p;
      sp->val[sp->n] = eq + 1;
      sp->n++;
    } else if (sp->n > 0) {
      p[-1] = ','; /* continuation: restore the comma that ended the previous value */
    } else {
      return csde_err_set(err, CSDE_ESPEC,
                          "%s '%s': expected key=value after ':', got '%s'", what, s, p);
    }
    p = comma ? comma + 1 : NULL;
  }
  return CSDE_SUCCESS;
}

const char *csde_spec_get(const csde_spec *sp, const char *key)
{
  for (size_t i = 0; i < sp->n; i++)
    if (!strcmp(sp->key[i], key)) return sp->val[i];
  return NULL;
}

int csde_spec_check_keys(const csde_spec *sp, const char *const *allowed, csde_err *err)
{
  for (size_t i = 0; i < sp->n; i++) {
    int ok = 0;
    for (const char *const *a = allowed; *a; a++)
      if (!strcmp(*a, sp->key[i])) ok = 1;
    if (!ok) {
      char list[256] = "";
      size_t len = 0;
      for (const char *const *a = allowed; *a && len < sizeof list - 40; a++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
                                a == allowed ? "" : ", ", *a);
      return csde_err_set(err, CSDE_ESPEC, "unknown parameter '%s' for '%s' (expected: %s)",
                          sp->key[i], sp->name, allowed[0] ? list : "none");
    }
  }
  return CSDE_SUCCESS;
}

int csde_spec_double(const csde_spec *sp, const char *key, double dflt, double *out,
                     csde_err *err)
{
  const char *v = csde_spec_get(sp, key);
  if (!v) {
    *out = dflt;
    return CSDE_SUCCESS;
  }
  if (csde_parse_double(v, out))
    return csde_err_set(err, CSDE_ESPEC, "'%s:%s=%s': expected a finite number", sp->name,
                        key, v);
  return CSDE_SUCCESS;
}

int csde_spec_size(const csde_spec *sp, const char *key, size_t dflt, size_t *out,
                   csde_err *err)
{
  const char *v = csde_spec_get(sp, key);
  if (!v) {
    *out = dflt;
    return CSDE_SUCCESS;
  }
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (!(v[0] >= '0' && v[0] <= '9') || *end || errno || n == 0) /* no sign, no blank */
    return csde_err_set(err, CSDE_ESPEC, "'%s:%s=%s': expected a positive integer",
                        sp->name, key, v);
  *out = (size_t)n;
  return CSDE_SUCCESS;
}

int csde_parse_double_list(const char *s, double **out, size_t *n, csde_err *err)
{
  size_t cap = 16, len = 0;
  double *v = malloc(cap * sizeof *v);
  if (!v) return csde_err_set(err, CSDE_ENOMEM, "out of memory reading a number list");
  const char *p = s;
  for (;;) {
    /* a separator is a run of blanks with at most one comma; a comma first, last or
     * after another (blanks between) leaves an entry empty, which is refused: "0.5,,0.4"
     * is a slip, not the list 0.5, 0.4 */
    size_t commas = 0;
    for (; *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ','; p++)
      if (*p == ',' && (len == 0 || ++commas > 1)) {
        free(v);
        return csde_err_set(err, CSDE_ESPEC,
                            "entry %zu is empty (a comma first, or two commas with nothing "
                            "between them); every entry must be a number",
                            len + 1);
      }
    if (!*p) {
      if (commas) {
        free(v);
        return csde_err_set(err, CSDE_ESPEC,
                            "entry %zu is empty (a trailing comma); every entry must be a "
                            "number",
                            len + 1);
      }
      break;
    }
    char *end;
    errno = 0;
    double x = strtod(p, &end);
    if (end == p || errno == ERANGE || !isfinite(x)) {
      char tok[32];
      size_t k = 0;
      while (p[k] && p[k] != ',' && p[k] != ' ' && p[k] != '\n' && k < sizeof tok - 1) {
        tok[k] = p[k];
        k++;
      }
      tok[k] = '\0';
      free(v);
      return csde_err_set(err, CSDE_ESPEC, "'%s' is not a finite number (entry %zu)", tok,
                          len + 1);
    }
    if (len == cap) {
      double *w = realloc(v, 2 * cap * sizeof *v);
      if (!w) {
        free(v);
        return csde_err_set(err, CSDE_ENOMEM, "out of memory reading a number list");
      }
      v = w;
      cap *= 2;
    }
    v[len++] = x;
    p = end;
    if (*p && *p != ',' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      free(v);
      return csde_err_set(err, CSDE_ESPEC, "unexpected '%c' after entry %zu", *p, len);
    }
  }
  if (len == 0) {
    free(v);
    return csde_err_set(err, CSDE_ESPEC, "empty number list");
  }
  *out = v;
  *n = len;
  return CSDE_SUCCESS;
}
