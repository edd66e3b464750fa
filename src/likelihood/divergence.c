/* placeholder: filled by issue 27 */
#include "corrsde/likelihood.h"
