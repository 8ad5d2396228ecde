/* The regex engine of regex.h: a recursive-descent parser builds a tree of
 * nodes in one array, the emitter turns it into a program, and a
 * backtracking VM runs it. Classes keep an ASCII bitmap (the common case)
 * beside their item list. */
#include <string.h>
#include <utf8proc.h>

#include "regex.h"

enum { N_CHAR, N_CLASS, N_ANY, N_CAT, N_ALT, N_REP, N_LOOK, N_BOL, N_EOL, N_BOS, N_EOS, N_EMPTY };
enum { I_CHAR, I_CLASS, I_ANY, I_SPLIT, I_JMP, I_LOOK, I_MATCH, I_BOL, I_EOL, I_BOS, I_EOS };
enum { K_RANGE, K_CATS, K_SPACE, K_WORD };

#define RE_MAX_PROG 65536
#define RE_MAX_NODES 65536

typedef struct cls_item {
    uint8_t kind, neg;
    uint32_t lo, hi;   /* K_RANGE; K_CATS: bit mask of utf8proc categories in lo */
} cls_item;

typedef struct re_class {
    uint32_t ascii[4];
    cls_item *items;
    size_t n;
    int neg, icase;
} re_class;

typedef struct node {
    int type;
    uint32_t c;          /* N_CHAR code point; N_CLASS class index; N_LOOK 1 = negative */
    int icase;
    int kid, next;       /* first child, next sibling (-1 none) */
    int min, max, greedy;   /* N_REP; max -1 = unbounded */
} node;

typedef struct inst {
    uint8_t op, icase;
    uint32_t arg;   /* char, class index */
    int32_t x, y;   /* SPLIT targets, JMP target x, LOOK: body at pc+1, x = after, arg = negative */
} inst;

struct tok_re {
    inst *prog;
    size_t n_prog;
    re_class *classes;
    size_t n_classes;
};

typedef struct parser {
    const uint32_t *p;
    size_t n, i;
    node *nodes;
    size_t n_nodes, cap_nodes;
    re_class *classes;
    size_t n_classes, cap_classes;
    int icase;
    int err;
} parser;

/* ---- Unicode ---- */

int tok_uni_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

static uint32_t cat_bit(uint32_t c) { return 1u << utf8proc_category((utf8proc_int32_t)c); }

#define CB(x) (1u << UTF8PROC_CATEGORY_##x)
#define CATS_L (CB(LU) | CB(LL) | CB(LT) | CB(LM) | CB(LO))
#define CATS_M (CB(MN) | CB(MC) | CB(ME))
#define CATS_N (CB(ND) | CB(NL) | CB(NO))
#define CATS_P (CB(PC) | CB(PD) | CB(PS) | CB(PE) | CB(PI) | CB(PF) | CB(PO))
#define CATS_S (CB(SM) | CB(SC) | CB(SK) | CB(SO))
#define CATS_Z (CB(ZS) | CB(ZL) | CB(ZP))
#define CATS_C (CB(CC) | CB(CF) | CB(CS) | CB(CO) | CB(CN))

int tok_uni_word(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    return (cat_bit(c) & (CATS_L | CATS_M | CB(ND) | CB(NL) | CB(PC))) != 0 || c == 0x200C || c == 0x200D;
}

uint32_t tok_uni_fold(uint32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    utf8proc_int32_t out[4];
    int last = 0;
    utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)c, out, 4, UTF8PROC_CASEFOLD, &last);
    return k == 1 ? (uint32_t)out[0] : c;
}

static int item_match(const cls_item *it, uint32_t c) {
    int m;
    switch (it->kind) {
    case K_RANGE: m = c >= it->lo && c <= it->hi; break;
    case K_CATS: m = (cat_bit(c) & it->lo) != 0; break;
    case K_SPACE: m = tok_uni_space(c); break;
    default: m = tok_uni_word(c); break;
    }
    return m != it->neg;
}

static int class_match_raw(const re_class *k, uint32_t c) {
    if (c < 128) return (k->ascii[c >> 5] >> (c & 31)) & 1;
    int m = 0;
    for (size_t i = 0; i < k->n && !m; i++) m = item_match(&k->items[i], c);
    return m != k->neg;
}

static int class_match(const re_class *k, uint32_t c) {
    if (class_match_raw(k, c)) return 1;
    if (!k->icase) return 0;
    uint32_t f = tok_uni_fold(c), u = (uint32_t)utf8proc_toupper((utf8proc_int32_t)c);
    return (f != c && class_match_raw(k, f)) || (u != c && class_match_raw(k, u));
}

/* ---- parser ---- */

static int new_node(parser *ps, int type) {
    if (ps->n_nodes >= ps->cap_nodes) {
        ps->err = base_err(CEMBED_ELIMIT, "regex: pattern too large");
        return -1;
    }
    node *nd = &ps->nodes[ps->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->type = type;
    nd->kid = nd->next = -1;
    nd->icase = ps->icase;
    return (int)ps->n_nodes++;
}

static int syntax(parser *ps, const char *what) {
    if (!ps->err) ps->err = base_err(CEMBED_EMODEL, "regex: %s at offset %zu", what, ps->i);
    return -1;
}

static int add_item(re_class *k, cls_item it) {
    cls_item *p = base_realloc(k->items, (k->n + 1) * sizeof *p);
    if (!p) return base_err(CEMBED_ENOMEM, "regex: out of memory");
    k->items = p;
    k->items[k->n++] = it;
    return 0;
}

static uint32_t cats_by_name(const uint32_t *s, size_t n) {
    static const struct { const char *name; uint32_t mask; } tab[] = {
        {"L", CATS_L}, {"Letter", CATS_L}, {"Lu", CB(LU)}, {"Ll", CB(LL)}, {"Lt", CB(LT)}, {"Lm", CB(LM)},
        {"Lo", CB(LO)}, {"M", CATS_M}, {"Mark", CATS_M}, {"Mn", CB(MN)}, {"Mc", CB(MC)}, {"Me", CB(ME)},
        {"N", CATS_N}, {"Number", CATS_N}, {"Nd", CB(ND)}, {"Nl", CB(NL)}, {"No", CB(NO)},
        {"P", CATS_P}, {"Punctuation", CATS_P}, {"Pc", CB(PC)}, {"Pd", CB(PD)}, {"Ps", CB(PS)},
        {"Pe", CB(PE)}, {"Pi", CB(PI)}, {"Pf", CB(PF)}, {"Po", CB(PO)}, {"S", CATS_S}, {"Symbol", CATS_S},
        {"Sm", CB(SM)}, {"Sc", CB(SC)}, {"Sk", CB(SK)}, {"So", CB(SO)}, {"Z", CATS_Z}, {"Separator", CATS_Z},
        {"Zs", CB(ZS)}, {"Zl", CB(ZL)}, {"Zp", CB(ZP)}, {"C", CATS_C}, {"Other", CATS_C}, {"Cc", CB(CC)},
        {"Cf", CB(CF)}, {"Co", CB(CO)}, {"Cs", CB(CS)}, {"Cn", CB(CN)},
    };
    for (size_t t = 0; t < CE_ARRAY_LEN(tab); t++) {
        size_t k = strlen(tab[t].name), j = 0;
        if (k != n) continue;
        while (j < n && s[j] == (unsigned char)tab[t].name[j]) j++;
        if (j == n) return tab[t].mask;
    }
    return 0;
}

static int hexval(uint32_t c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

/* Parses an escape after '\'. Returns 1 and sets *item for a class escape,
 * 0 and sets *cp for a literal, -1 on error. */
static int parse_escape(parser *ps, cls_item *item, uint32_t *cp) {
    if (ps->i >= ps->n) return syntax(ps, "trailing backslash");
    uint32_t c = ps->p[ps->i++];
    memset(item, 0, sizeof *item);
    switch (c) {
    case 's': case 'S': item->kind = K_SPACE; item->neg = c == 'S'; return 1;
    case 'w': case 'W': item->kind = K_WORD; item->neg = c == 'W'; return 1;
    case 'd': case 'D': item->kind = K_CATS; item->lo = CB(ND); item->neg = c == 'D'; return 1;
    case 'h': case 'H': item->kind = K_RANGE; return syntax(ps, "\\h is not supported");
    case 'p': case 'P': {
        int neg = c == 'P';
        if (ps->i >= ps->n || ps->p[ps->i] != '{') return syntax(ps, "\\p needs {name}");
        size_t st = ++ps->i;
        if (ps->i < ps->n && ps->p[ps->i] == '^') neg = !neg, st = ++ps->i;
        while (ps->i < ps->n && ps->p[ps->i] != '}') ps->i++;
        if (ps->i >= ps->n) return syntax(ps, "unterminated \\p{");
        uint32_t m = cats_by_name(ps->p + st, ps->i - st);
        ps->i++;
        if (!m) return syntax(ps, "unknown \\p{} property");
        item->kind = K_CATS;
        item->lo = m;
        item->neg = (uint8_t)neg;
        return 1;
    }
    case 'n': *cp = '\n'; return 0;
    case 'r': *cp = '\r'; return 0;
    case 't': *cp = '\t'; return 0;
    case 'f': *cp = '\f'; return 0;
    case 'v': *cp = '\v'; return 0;
    case 'a': *cp = 7; return 0;
    case 'e': *cp = 27; return 0;
    case '0': *cp = 0; return 0;
    case 'x': case 'u': {
        uint32_t v = 0;
        int brace = ps->i < ps->n && ps->p[ps->i] == '{', digits = 0, want = c == 'u' ? 4 : 2;
        if (brace) ps->i++;
        while (ps->i < ps->n && hexval(ps->p[ps->i]) >= 0 && (brace || digits < want) && digits < 8)
            v = v * 16 + (uint32_t)hexval(ps->p[ps->i++]), digits++;
        if (brace && (ps->i >= ps->n || ps->p[ps->i++] != '}')) return syntax(ps, "bad \\x{...}");
        if (!digits || v > 0x10FFFF) return syntax(ps, "bad hex escape");
        *cp = v;
        return 0;
    }
    default:
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '1' && c <= '9'))
            return syntax(ps, "unsupported escape");
        *cp = c;
        return 0;
    }
}

static void class_set_ascii(re_class *k) {
    memset(k->ascii, 0, sizeof k->ascii);
    for (uint32_t c = 0; c < 128; c++) {
        int m = 0;
        for (size_t i = 0; i < k->n && !m; i++) m = item_match(&k->items[i], c);
        if (m != k->neg) k->ascii[c >> 5] |= 1u << (c & 31);
    }
}

static int new_class(parser *ps) {
    if (ps->n_classes == ps->cap_classes) {
        size_t cap = ps->cap_classes ? ps->cap_classes * 2 : 8;
        re_class *p = base_realloc(ps->classes, cap * sizeof *p);
        if (!p) {
            ps->err = base_err(CEMBED_ENOMEM, "regex: out of memory");
            return -1;
        }
        ps->classes = p;
        ps->cap_classes = cap;
    }
    memset(&ps->classes[ps->n_classes], 0, sizeof *ps->classes);
    ps->classes[ps->n_classes].icase = ps->icase;
    return (int)ps->n_classes++;
}

/* [...] after the '['. */
static int parse_bracket(parser *ps) {
    int ki = new_class(ps);
    if (ki < 0) return -1;
    re_class *k = &ps->classes[ki];
    if (ps->i < ps->n && ps->p[ps->i] == '^') k->neg = 1, ps->i++;
    int first = 1;
    for (;;) {
        if (ps->i >= ps->n) return syntax(ps, "unterminated [");
        uint32_t c = ps->p[ps->i];
        if (c == ']' && !first) {
            ps->i++;
            break;
        }
        first = 0;
        if (c == '[') return syntax(ps, "nested classes are not supported");
        ps->i++;
        cls_item it;
        uint32_t lo = c;
        if (c == '\\') {
            int r = parse_escape(ps, &it, &lo);
            if (r < 0) return -1;
            if (r == 1) {
                if (add_item(k, it)) return ps->err = CEMBED_ENOMEM, -1;
                continue;
            }
        }
        uint32_t hi = lo;
        if (ps->i + 1 < ps->n && ps->p[ps->i] == '-' && ps->p[ps->i + 1] != ']') {
            ps->i++;
            hi = ps->p[ps->i++];
            if (hi == '\\') {
                int r = parse_escape(ps, &it, &hi);
                if (r != 0) return r < 0 ? -1 : syntax(ps, "class escape as a range end");
            }
            if (hi < lo) return syntax(ps, "reversed range");
        }
        if (add_item(k, (cls_item){K_RANGE, 0, lo, hi})) return ps->err = CEMBED_ENOMEM, -1;
    }
    class_set_ascii(k);
    int nd = new_node(ps, N_CLASS);
    if (nd >= 0) ps->nodes[nd].c = (uint32_t)ki;
    return nd;
}

static int parse_alt(parser *ps);

static int parse_group(parser *ps) {
    int look = -1, saved = ps->icase;
    if (ps->i < ps->n && ps->p[ps->i] == '?') {
        ps->i++;
        uint32_t c = ps->i < ps->n ? ps->p[ps->i] : 0;
        if (c == ':') ps->i++;
        else if (c == '!' || c == '=') look = c == '!', ps->i++;
        else if (c == 'i' && ps->i + 1 < ps->n && ps->p[ps->i + 1] == ':') ps->icase = 1, ps->i += 2;
        else if (c == '-' && ps->i + 2 < ps->n && ps->p[ps->i + 1] == 'i' && ps->p[ps->i + 2] == ':')
            ps->icase = 0, ps->i += 3;
        else return syntax(ps, "unsupported group");
    }
    int body = parse_alt(ps);
    ps->icase = saved;
    if (body < 0) return -1;
    if (ps->i >= ps->n || ps->p[ps->i] != ')') return syntax(ps, "missing )");
    ps->i++;
    if (look < 0) return body;
    int nd = new_node(ps, N_LOOK);
    if (nd < 0) return -1;
    ps->nodes[nd].kid = body;
    ps->nodes[nd].c = (uint32_t)look;
    return nd;
}

static int parse_atom(parser *ps) {
    uint32_t c = ps->p[ps->i++];
    int nd;
    switch (c) {
    case '(': return parse_group(ps);
    case '[': return parse_bracket(ps);
    case '.': return new_node(ps, N_ANY);
    case '^': return new_node(ps, N_BOL);
    case '$': return new_node(ps, N_EOL);
    case '*': case '+': case '?': case '{': case ')': case '|': return syntax(ps, "misplaced operator");
    case '\\': {
        if (ps->i < ps->n && (ps->p[ps->i] == 'A' || ps->p[ps->i] == 'z'))
            return new_node(ps, ps->p[ps->i++] == 'A' ? N_BOS : N_EOS);
        cls_item it;
        uint32_t cp = 0;
        int r = parse_escape(ps, &it, &cp);
        if (r < 0) return -1;
        if (r == 1) {
            int ki = new_class(ps);
            if (ki < 0 || add_item(&ps->classes[ki], it)) return ps->err = ps->err ? ps->err : CEMBED_ENOMEM, -1;
            class_set_ascii(&ps->classes[ki]);
            if ((nd = new_node(ps, N_CLASS)) >= 0) ps->nodes[nd].c = (uint32_t)ki;
            return nd;
        }
        c = cp;
        break;
    }
    }
    if ((nd = new_node(ps, N_CHAR)) >= 0) ps->nodes[nd].c = ps->icase ? tok_uni_fold(c) : c;
    return nd;
}

static int parse_number(parser *ps, int *v) {
    size_t st = ps->i;
    long x = 0;
    while (ps->i < ps->n && ps->p[ps->i] >= '0' && ps->p[ps->i] <= '9' && x < 100000)
        x = x * 10 + (long)(ps->p[ps->i++] - '0');
    *v = (int)x;
    return ps->i > st;
}

/* After an atom: ? * + {n} {n,} {n,m}, each optionally lazy. */
static int parse_quant(parser *ps, int atom) {
    while (ps->i < ps->n) {
        uint32_t c = ps->p[ps->i];
        int min, max;
        size_t save = ps->i;
        if (c == '?') min = 0, max = 1;
        else if (c == '*') min = 0, max = -1;
        else if (c == '+') min = 1, max = -1;
        else if (c == '{') {
            ps->i++;
            if (!parse_number(ps, &min)) { ps->i = save; return atom; }
            max = min;
            if (ps->i < ps->n && ps->p[ps->i] == ',') {
                ps->i++;
                if (!parse_number(ps, &max)) max = -1;
            }
            if (ps->i >= ps->n || ps->p[ps->i] != '}' || (max >= 0 && max < min) || min > 1000 || max > 1000)
                return syntax(ps, "bad {n,m}");
        } else return atom;
        ps->i++;
        int greedy = 1;
        if (ps->i < ps->n && ps->p[ps->i] == '?') greedy = 0, ps->i++;
        else if (ps->i < ps->n && ps->p[ps->i] == '+') return syntax(ps, "possessive quantifiers are not supported");
        int nd = new_node(ps, N_REP);
        if (nd < 0) return -1;
        ps->nodes[nd].kid = atom;
        ps->nodes[nd].min = min;
        ps->nodes[nd].max = max;
        ps->nodes[nd].greedy = greedy;
        atom = nd;
    }
    return atom;
}

static int parse_cat(parser *ps) {
    int cat = new_node(ps, N_CAT), last = -1;
    if (cat < 0) return -1;
    while (ps->i < ps->n && ps->p[ps->i] != '|' && ps->p[ps->i] != ')') {
        int a = parse_atom(ps);
        if (a < 0 || (a = parse_quant(ps, a)) < 0) return -1;
        if (last < 0) ps->nodes[cat].kid = a;
        else ps->nodes[last].next = a;
        last = a;
    }
    return cat;
}

static int parse_alt(parser *ps) {
    int first = parse_cat(ps);
    if (first < 0 || ps->i >= ps->n || ps->p[ps->i] != '|') return first;
    int alt = new_node(ps, N_ALT), last = first;
    if (alt < 0) return -1;
    ps->nodes[alt].kid = first;
    while (ps->i < ps->n && ps->p[ps->i] == '|') {
        ps->i++;
        int b = parse_cat(ps);
        if (b < 0) return -1;
        ps->nodes[last].next = b;
        last = b;
    }
    return alt;
}

/* ---- emitter ---- */

typedef struct emitter {
    inst *prog;
    size_t n, cap;
    const node *nodes;
    int err;
} emitter;

static int emit(emitter *e, inst in) {
    if (e->n >= RE_MAX_PROG) {
        if (!e->err) e->err = base_err(CEMBED_ELIMIT, "regex: program over %d instructions", RE_MAX_PROG);
        return -1;
    }
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        inst *p = base_realloc(e->prog, cap * sizeof *p);
        if (!p) {
            e->err = base_err(CEMBED_ENOMEM, "regex: out of memory");
            return -1;
        }
        e->prog = p;
        e->cap = cap;
    }
    e->prog[e->n] = in;
    return (int)e->n++;
}

/* Can node k match the empty string? */
static int nullable(const node *nodes, int k) {
    const node *nd = &nodes[k];
    switch (nd->type) {
    case N_CHAR: case N_CLASS: case N_ANY: return 0;
    case N_CAT:
        for (int c = nd->kid; c >= 0; c = nodes[c].next)
            if (!nullable(nodes, c)) return 0;
        return 1;
    case N_ALT:
        for (int c = nd->kid; c >= 0; c = nodes[c].next)
            if (nullable(nodes, c)) return 1;
        return 0;
    case N_REP: return nd->min == 0 || nullable(nodes, nd->kid);
    default: return 1;
    }
}

static int gen(emitter *e, int k);

/* Does node k hold a repeat that can take more than one turn? */
static int has_repeat(const node *nodes, int k) {
    const node *nd = &nodes[k];
    if (nd->type == N_REP && (nd->max < 0 || nd->max > 1)) return 1;
    for (int c = nd->kid; c >= 0; c = nodes[c].next)
        if (has_repeat(nodes, c)) return 1;
    return 0;
}

static int gen_rep(emitter *e, const node *nd) {
    /* (x+)+ and the like backtrack exponentially on a failing text: refused */
    if ((nd->max < 0 || nd->max > 1) && has_repeat(e->nodes, nd->kid)) {
        e->err = base_err(CEMBED_EMODEL, "regex: a repeat inside a repeat is not supported");
        return -1;
    }
    for (int r = 0; r < nd->min; r++)
        if (gen(e, nd->kid)) return -1;
    if (nd->max < 0) {
        if (nullable(e->nodes, nd->kid)) {
            e->err = base_err(CEMBED_EMODEL, "regex: a repeat whose body can match empty");
            return -1;
        }
        int sp = emit(e, (inst){I_SPLIT, 0, 0, 0, 0});
        if (sp < 0 || gen(e, nd->kid)) return -1;
        if (emit(e, (inst){I_JMP, 0, 0, sp, 0}) < 0) return -1;
        e->prog[sp].x = nd->greedy ? sp + 1 : (int32_t)e->n;
        e->prog[sp].y = nd->greedy ? (int32_t)e->n : sp + 1;
        return 0;
    }
    int opt = nd->max - nd->min, holes[1001], nh = 0;
    for (int r = 0; r < opt; r++) {
        int sp = emit(e, (inst){I_SPLIT, 0, 0, 0, 0});
        if (sp < 0) return -1;
        holes[nh++] = sp;
        if (gen(e, nd->kid)) return -1;
    }
    for (int h = 0; h < nh; h++) {
        int sp = holes[h];
        e->prog[sp].x = nd->greedy ? sp + 1 : (int32_t)e->n;
        e->prog[sp].y = nd->greedy ? (int32_t)e->n : sp + 1;
    }
    return 0;
}

static int gen_alt(emitter *e, const node *nd) {
    int jumps[256], nj = 0;
    for (int c = nd->kid; c >= 0; c = e->nodes[c].next) {
        int sp = -1;
        if (e->nodes[c].next >= 0 && (sp = emit(e, (inst){I_SPLIT, 0, 0, 0, 0})) < 0) return -1;
        if (sp >= 0) e->prog[sp].x = sp + 1;
        if (gen(e, c)) return -1;
        if (e->nodes[c].next >= 0) {
            if (nj == 256) {
                e->err = base_err(CEMBED_EMODEL, "regex: over 256 alternatives");
                return -1;
            }
            if ((jumps[nj++] = emit(e, (inst){I_JMP, 0, 0, 0, 0})) < 0) return -1;
            e->prog[sp].y = (int32_t)e->n;
        }
    }
    for (int j = 0; j < nj; j++) e->prog[jumps[j]].x = (int32_t)e->n;
    return 0;
}

static int gen(emitter *e, int k) {
    const node *nd = &e->nodes[k];
    int pc;
    switch (nd->type) {
    case N_CHAR: return emit(e, (inst){I_CHAR, (uint8_t)nd->icase, nd->c, 0, 0}) < 0 ? -1 : 0;
    case N_CLASS: return emit(e, (inst){I_CLASS, 0, nd->c, 0, 0}) < 0 ? -1 : 0;
    case N_ANY: return emit(e, (inst){I_ANY, 0, 0, 0, 0}) < 0 ? -1 : 0;
    case N_BOL: return emit(e, (inst){I_BOL, 0, 0, 0, 0}) < 0 ? -1 : 0;
    case N_EOL: return emit(e, (inst){I_EOL, 0, 0, 0, 0}) < 0 ? -1 : 0;
    case N_BOS: return emit(e, (inst){I_BOS, 0, 0, 0, 0}) < 0 ? -1 : 0;
    case N_EOS: return emit(e, (inst){I_EOS, 0, 0, 0, 0}) < 0 ? -1 : 0;
    case N_CAT:
        for (int c = nd->kid; c >= 0; c = e->nodes[c].next)
            if (gen(e, c)) return -1;
        return 0;
    case N_ALT: return gen_alt(e, nd);
    case N_REP: return gen_rep(e, nd);
    case N_LOOK:
        if ((pc = emit(e, (inst){I_LOOK, 0, nd->c, 0, 0})) < 0 || gen(e, nd->kid) ||
            emit(e, (inst){I_MATCH, 0, 0, 0, 0}) < 0)
            return -1;
        e->prog[pc].x = (int32_t)e->n;
        return 0;
    default: return 0;
    }
}

void tok_re_free(tok_re *re) {
    if (!re) return;
    for (size_t i = 0; i < re->n_classes; i++) base_free(re->classes[i].items);
    base_free(re->classes);
    base_free(re->prog);
    base_free(re);
}

int tok_re_compile(const char *pat, size_t len, tok_re **out) {
    *out = NULL;
    parser ps = {0};
    emitter e = {0};
    uint32_t *cps = base_malloc((len + 1) * sizeof *cps);
    /* a node per code point at most, plus one CAT per group and alternative */
    ps.cap_nodes = len * 4 + 16 < RE_MAX_NODES ? len * 4 + 16 : RE_MAX_NODES;
    ps.nodes = base_malloc(ps.cap_nodes * sizeof *ps.nodes);
    tok_re *re = base_calloc(1, sizeof *re);
    int rc = CEMBED_ENOMEM;
    if (!cps || !ps.nodes || !re) {
        base_err(rc, "regex: out of memory");
        goto fail;
    }
    ps.p = cps;
    ps.n = utf8_decode(pat, len, cps);
    int root = parse_alt(&ps);
    if (root >= 0 && ps.i < ps.n) root = syntax(&ps, "unbalanced )");
    if (root < 0) {
        rc = ps.err ? ps.err : CEMBED_EMODEL;
        goto fail;
    }
    e.nodes = ps.nodes;
    if (gen(&e, root) || emit(&e, (inst){I_MATCH, 0, 0, 0, 0}) < 0) {
        rc = e.err;
        goto fail;
    }
    re->prog = e.prog;
    re->n_prog = e.n;
    re->classes = ps.classes;
    re->n_classes = ps.n_classes;
    base_free(cps);
    base_free(ps.nodes);
    *out = re;
    return 0;
fail:
    for (size_t i = 0; i < ps.n_classes; i++) base_free(ps.classes[i].items);
    base_free(ps.classes);
    base_free(e.prog);
    base_free(cps);
    base_free(ps.nodes);
    base_free(re);
    return rc;
}

/* ---- the VM ---- */

typedef struct frame {
    int32_t pc;
    uint32_t pos;
} frame;

typedef struct re_stack {
    frame *f;
    size_t n, cap;
} re_stack;

static _Thread_local re_stack vm_stack;

static int push(re_stack *st, int32_t pc, size_t pos) {
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 256;
        frame *p = base_realloc(st->f, cap * sizeof *p);
        if (!p) return CEMBED_ENOMEM;
        st->f = p;
        st->cap = cap;
    }
    st->f[st->n++] = (frame){pc, (uint32_t)pos};
    return 0;
}

/* Runs the program from pc at pos; 1 with *end on a match, 0 if none, <0 ENOMEM. */
static int run(const tok_re *re, const uint32_t *s, size_t n, int32_t pc, size_t pos, size_t *end) {
    re_stack *st = &vm_stack;
    size_t base = st->n;
    if (push(st, pc, pos)) return CEMBED_ENOMEM;
    while (st->n > base) {
        frame fr = st->f[--st->n];
        pc = fr.pc;
        pos = fr.pos;
        for (;;) {
            const inst *in = &re->prog[pc];
            int ok = 1;
            switch (in->op) {
            case I_CHAR:
                ok = pos < n && (in->icase ? tok_uni_fold(s[pos]) == in->arg : s[pos] == in->arg);
                pos++, pc++;
                break;
            case I_CLASS: ok = pos < n && class_match(&re->classes[in->arg], s[pos]); pos++, pc++; break;
            case I_ANY: ok = pos < n && s[pos] != '\n'; pos++, pc++; break;
            case I_BOL: ok = pos == 0 || s[pos - 1] == '\n'; pc++; break;
            case I_EOL: ok = pos == n || s[pos] == '\n'; pc++; break;
            case I_BOS: ok = pos == 0; pc++; break;
            case I_EOS: ok = pos == n; pc++; break;
            case I_JMP: pc = in->x; break;
            case I_SPLIT:
                if (push(st, in->y, pos)) return CEMBED_ENOMEM;
                pc = in->x;
                break;
            case I_LOOK: {
                size_t e;
                int r = run(re, s, n, pc + 1, pos, &e);
                if (r < 0) return r;
                ok = (r == 1) != (in->arg == 1);
                pc = in->x;
                break;
            }
            default: /* I_MATCH */
                st->n = base;
                *end = pos;
                return 1;
            }
            if (!ok) break;
        }
    }
    return 0;
}

void tok_re_thread_release(void) {
    base_free(vm_stack.f);
    memset(&vm_stack, 0, sizeof vm_stack);
}

int tok_re_find(const tok_re *re, const uint32_t *s, size_t n, size_t from, size_t *ms, size_t *me) {
    for (size_t i = from; i <= n; i++) {
        int r = run(re, s, n, 0, i, me);
        if (r) {
            *ms = i;
            return r;
        }
    }
    return 0;
}
