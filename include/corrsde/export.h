/* corrsde/export.h: CSDE_API marks the functions libcorrsde.so exports. The library is
 * built with hidden visibility, so everything else (the internal modules under src/)
 * stays out of its dynamic symbol table. */
#ifndef CORRSDE_EXPORT_H
#define CORRSDE_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define CSDE_API __attribute__((visibility("default")))
#else
#define CSDE_API
#endif

#endif
