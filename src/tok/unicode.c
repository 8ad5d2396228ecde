/* The character classes the BERT tokenizer needs, with
 * the exact sets of the JS oracle: whitespace is JavaScript's \s, punctuation
 * is \p{P} plus the ASCII symbol ranges, CJK is checked per UTF-16 unit (so
 * only BMP ideographs are padded, as the oracle does). */
#include <utf8proc.h>

#include "tok.h"

int uni_is_js_space(uint32_t c) {
    /* ECMAScript WhiteSpace + LineTerminator: what \s and trim() match */
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

int uni_is_bert_punct(uint32_t c) {
    if ((c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
        (c >= 0x7B && c <= 0x7E))
        return 1;
    if (c < 0x80) return 0;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return 1;
    default:
        return 0;
    }
}

int uni_is_cjk_bmp(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0xF900 && c <= 0xFAFF);
}
