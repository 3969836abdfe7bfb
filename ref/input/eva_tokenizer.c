/* eva_tokenizer.c: the CLIP BPE tokenizer of open_clip 2.24 (SimpleTokenizer, clean='lower'),
 * docs/model.md §6.
 *
 * Text cleaning follows ftfy 6.2's fix_text with default settings, segment by segment ('\n'
 * ends a segment; HTML unescaping stops for good at the first segment holding '<'), each segment
 * repeated until it no longer changes:
 *   unescape_html (ftfy's own entity table, &#..; through html.unescape) -> fix_c1_controls
 *   (sloppy windows-1252) -> fix_latin_ligatures -> fix_character_width -> uncurl_quotes ->
 *   fix_line_breaks -> fix_surrogates (U+FFFD, see below) -> remove_terminal_escapes ->
 *   remove_control_chars -> NFC (utf8proc).
 * NOT covered: ftfy's fix_encoding (mojibake detection and re-decoding, with restore_byte_a0,
 * replace_lossy_sequences, decode_inconsistent_utf8). Text that ftfy judges to be mojibake (for
 * example "sÃ³" -> "só") is tokenized as written here, and can differ from open_clip.
 * Then Python's html.unescape twice (the full HTML5 table, names without ';' by longest prefix,
 * numeric references with html's replacement rules), str.strip(), regex '\s+' -> ' ', strip,
 * str.lower() (utf8proc_tolower plus Python's exceptions: 'İ' -> "i̇" and the Final_Sigma rule).
 * All tables come from golden/gen_tables.py (ref/eva_text_tables.h), generated from Python, ftfy
 * and the regex module; letter/number classes are utf8proc's L and N categories, which equal the
 * regex module's \p{L}/\p{N} on every code point (checked), with U+0345 unmatched as regex's
 * IGNORECASE leaves it.
 *
 * Invalid UTF-8: each byte that is not part of a valid sequence becomes U+FFFD, which is what
 * open_clip gives for a command-line argument (Python decodes argv with surrogateescape, one lone
 * surrogate per bad byte; ftfy's fix_surrogates turns each into U+FFFD). Reads stay in bounds.
 *
 * BPE: symbols are vocabulary ids (every merge result is unique in the file, so an id names a
 * string); merge ranks in an open-addressing hash keyed by the id pair; merged id = 512 + rank.
 * Results per pre-token are cached in a second hash keyed by the pre-token's bytes.
 */
#include "eva_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>
#include <zlib.h>

#include "eva_text_tables.h"

/* Generated from ref/input/data/ by cmake/embed.cmake. */
const unsigned char *eva_input_embedded_file(const char *name, size_t *len);

#define N_MERGES 48894

/* ---------------------------------------------------------------- code point vectors -------- */

typedef struct {
    uint32_t *v;
    size_t n, cap;
    int oom;
} cpv;

static void cpv_free(cpv *a) {
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

static void cpv_reserve(cpv *a, size_t need) {
    if (need <= a->cap || a->oom) return;
    size_t cap = a->cap ? a->cap : 64;
    while (cap < need) cap *= 2;
    uint32_t *v = realloc(a->v, cap * sizeof *v);
    if (!v) {
        a->oom = 1;
        return;
    }
    a->v = v;
    a->cap = cap;
}

static void cpv_push(cpv *a, uint32_t c) {
    cpv_reserve(a, a->n + 1);
    if (a->oom) return;
    a->v[a->n++] = c;
}

/* Appends the code points of a valid UTF-8 string (from the generated tables). */
static void cpv_push_utf8(cpv *a, const char *s) {
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    while (*p) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p, -1, &c);
        if (k <= 0) return;
        cpv_push(a, (uint32_t)c);
        p += k;
    }
}

static void cpv_append(cpv *a, const uint32_t *v, size_t n) {
    if (n == 0) return;
    cpv_reserve(a, a->n + n);
    if (a->oom) return;
    memcpy(a->v + a->n, v, n * sizeof *v);
    a->n += n;
}

static int cpv_eq(const cpv *a, const cpv *b) {
    return a->n == b->n && (a->n == 0 || !memcmp(a->v, b->v, a->n * sizeof *a->v));
}

static void cpv_swap(cpv *a, cpv *b) {
    cpv t = *a;
    *a = *b;
    *b = t;
}

/* UTF-8 decode; a byte that starts no valid sequence becomes U+FFFD and decoding resumes at the
 * next byte (a continuation byte never starts a valid sequence, so this gives one U+FFFD per
 * byte of a maximal invalid subpart, as surrogateescape + fix_surrogates do). */
static void decode_utf8(cpv *out, const char *text, size_t len) {
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    size_t i = 0;
    cpv_reserve(out, len);
    while (i < len) {
        if (p[i] < 0x80) {
            cpv_push(out, p[i]);
            i++;
            continue;
        }
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0) {
            cpv_push(out, 0xFFFD);
            i++;
        } else {
            cpv_push(out, (uint32_t)c);
            i += (size_t)k;
        }
    }
}

static char *encode_utf8(const uint32_t *v, size_t n, size_t *out_len) {
    char *s = malloc(4 * n + 1);
    if (!s) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)utf8proc_encode_char((utf8proc_int32_t)v[i], (utf8proc_uint8_t *)s + k);
    s[k] = 0;
    if (out_len) *out_len = k;
    return s;
}

/* ---------------------------------------------------------------- table look-ups ------------ */

static int in_ranges(const eva_tt_range *r, size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid].lo) hi = mid;
        else if (c > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static const char *cp_lookup(const eva_tt_cpstr *t, size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < t[mid].cp) hi = mid;
        else if (c > t[mid].cp) lo = mid + 1;
        else return t[mid].val;
    }
    return NULL;
}

/* key: code points (ASCII expected), looked up by strcmp order in a sorted table. */
static const char *str_lookup(const eva_tt_str *t, size_t n, const uint32_t *key, size_t klen) {
    char buf[64];
    if (klen >= sizeof buf) return NULL;
    for (size_t i = 0; i < klen; i++) {
        if (key[i] == 0 || key[i] > 0x7F) return NULL; /* every table key is ASCII */
        buf[i] = (char)key[i];
    }
    buf[klen] = 0;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(buf, t[mid].key);
        if (c < 0) hi = mid;
        else if (c > 0) lo = mid + 1;
        else return t[mid].val;
    }
    return NULL;
}

static int is_ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int is_ascii_alnum(uint32_t c) {
    return is_ascii_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_hex(uint32_t c) {
    return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* regex module \s (White_Space). */
static int is_space_re(uint32_t c) { return in_ranges(eva_tt_space, EVA_TT_SPACE_N, c); }
/* Python str.isspace(): regex \s plus U+001C..U+001F. */
static int is_space_py(uint32_t c) { return (c >= 0x1C && c <= 0x1F) || is_space_re(c); }

/* ---------------------------------------------------------------- html.unescape ------------- */

/* Python html._replace_charref for a numeric reference. */
static void numeric_charref(cpv *out, uint64_t num) {
    for (size_t i = 0; i < EVA_TT_INVALID_CHARREFS_N; i++)
        if (eva_tt_invalid_charrefs[i][0] == num) {
            cpv_push(out, eva_tt_invalid_charrefs[i][1]);
            return;
        }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        cpv_push(out, 0xFFFD);
        return;
    }
    if (in_ranges(eva_tt_invalid_codepoints, EVA_TT_INVALID_CODEPOINTS_N, (uint32_t)num)) return;
    cpv_push(out, (uint32_t)num);
}

/* Python html.unescape(s): regex &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?). */
static void html_unescape(cpv *out, const uint32_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] != '&' || i + 1 >= n) {
            cpv_push(out, s[i++]);
            continue;
        }
        size_t j = i + 1;
        if (s[j] == '#') {
            uint64_t num = 0;
            size_t k = j + 1;
            int base = 10;
            if (k < n && (s[k] == 'x' || s[k] == 'X') && k + 1 < n && is_hex(s[k + 1])) {
                base = 16;
                k++;
            } else if (!(k < n && is_ascii_digit(s[k]))) {
                cpv_push(out, s[i++]); /* no match at this '&' */
                continue;
            }
            while (k < n && (base == 16 ? is_hex(s[k]) : is_ascii_digit(s[k]))) {
                uint32_t d = is_ascii_digit(s[k]) ? s[k] - '0' : (s[k] | 0x20) - 'a' + 10;
                if (num <= 0x10FFFF) num = num * (uint64_t)base + d; /* saturates above */
                k++;
            }
            if (k < n && s[k] == ';') k++;
            numeric_charref(out, num);
            i = k;
            continue;
        }
        size_t k = j;
        while (k < n && k - j < 32 && s[k] != '\t' && s[k] != '\n' && s[k] != '\f' && s[k] != ' ' &&
               s[k] != '<' && s[k] != '&' && s[k] != '#' && s[k] != ';')
            k++;
        if (k == j) {
            cpv_push(out, s[i++]);
            continue;
        }
        if (k < n && s[k] == ';') k++;
        /* name = s[j..k) */
        const char *v = str_lookup(eva_tt_html5, EVA_TT_HTML5_N, s + j, k - j);
        if (v) {
            cpv_push_utf8(out, v);
            i = k;
            continue;
        }
        int done = 0;
        for (size_t x = k - j - 1; x >= 2 && x < k - j; x--) {
            v = str_lookup(eva_tt_html5, EVA_TT_HTML5_N, s + j, x);
            if (v) {
                cpv_push_utf8(out, v);
                cpv_append(out, s + j + x, k - j - x);
                done = 1;
                break;
            }
        }
        if (!done) cpv_append(out, s + i, k - i);
        i = k;
    }
}

/* ---------------------------------------------------------------- ftfy ---------------------- */

/* ftfy unescape_html: HTML_ENTITY_RE &#?[0-9A-Za-z]{1,24}; with ftfy's table; '&#..;' through
 * html.unescape, kept as written when the result still holds ';'. */
static void ftfy_unescape(cpv *out, const uint32_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] != '&') {
            cpv_push(out, s[i++]);
            continue;
        }
        size_t j = i + 1, k;
        int hash = j < n && s[j] == '#';
        if (hash) j++;
        k = j;
        while (k < n && k - j < 24 && is_ascii_alnum(s[k])) k++;
        if (k == j || k >= n || s[k] != ';') {
            cpv_push(out, s[i++]);
            continue;
        }
        k++; /* match = s[i..k) */
        const char *v = hash ? NULL : str_lookup(eva_tt_ftfy_entities, EVA_TT_FTFY_ENTITIES_N, s + i + 1, k - i - 1);
        if (v) {
            cpv_push_utf8(out, v);
        } else if (hash) {
            cpv tmp = {0};
            html_unescape(&tmp, s + i, k - i);
            int semi = 0;
            for (size_t t = 0; t < tmp.n; t++) semi |= tmp.v[t] == ';';
            if (semi || tmp.oom) cpv_append(out, s + i, k - i);
            else cpv_append(out, tmp.v, tmp.n);
            cpv_free(&tmp);
        } else {
            cpv_append(out, s + i, k - i);
        }
        i = k;
    }
}

static int nfc(cpv *out, const uint32_t *s, size_t n) {
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = s[i] < 0x80;
    if (ascii) {
        cpv_append(out, s, n);
        return 0;
    }
    size_t blen;
    char *b = encode_utf8(s, n, &blen);
    if (!b) return -1;
    utf8proc_uint8_t *r = NULL;
    utf8proc_ssize_t rl = utf8proc_map((const utf8proc_uint8_t *)b, (utf8proc_ssize_t)blen, &r,
                                       UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    free(b);
    if (rl < 0) return -1;
    decode_utf8(out, (const char *)r, (size_t)rl);
    free(r);
    return 0;
}

/* One round of ftfy's fixers (everything but fix_encoding) on a segment: a -> a. */
static int ftfy_round(cpv *a, cpv *t, int unescape) {
    if (unescape) {
        t->n = 0;
        ftfy_unescape(t, a->v, a->n);
        cpv_swap(a, t);
    }
    /* fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes: one pass each */
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i] >= 0x80 && a->v[i] <= 0x9F) a->v[i] = eva_tt_c1[a->v[i] - 0x80];
    for (int pass = 0; pass < 2; pass++) {
        const eva_tt_cpstr *tab = pass ? eva_tt_width : eva_tt_ligatures;
        size_t tn = pass ? EVA_TT_WIDTH_N : EVA_TT_LIGATURES_N;
        t->n = 0;
        for (size_t i = 0; i < a->n; i++) {
            const char *v = cp_lookup(tab, tn, a->v[i]);
            if (v) cpv_push_utf8(t, v);
            else cpv_push(t, a->v[i]);
        }
        cpv_swap(a, t);
    }
    for (size_t i = 0; i < a->n; i++) {
        uint32_t c = a->v[i];
        if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) a->v[i] = '\'';
        else if (c >= 0x201C && c <= 0x201F) a->v[i] = '"';
    }
    /* fix_line_breaks */
    t->n = 0;
    for (size_t i = 0; i < a->n; i++) {
        uint32_t c = a->v[i];
        if (c == '\r' && i + 1 < a->n && a->v[i + 1] == '\n') continue;
        cpv_push(t, (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) ? '\n' : c);
    }
    cpv_swap(a, t);
    /* fix_surrogates: none can occur (decode_utf8 already produced U+FFFD). */
    /* remove_terminal_escapes: \033\[((?:\d|;)*)([a-zA-Z]), \d = Unicode Nd */
    t->n = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i] == 0x1B && i + 1 < a->n && a->v[i + 1] == '[') {
            size_t k = i + 2;
            while (k < a->n && (a->v[k] == ';' ||
                                utf8proc_category((utf8proc_int32_t)a->v[k]) == UTF8PROC_CATEGORY_ND))
                k++;
            if (k < a->n && a->v[k] < 0x80 && ((a->v[k] | 0x20) >= 'a' && (a->v[k] | 0x20) <= 'z')) {
                i = k;
                continue;
            }
        }
        cpv_push(t, a->v[i]);
    }
    cpv_swap(a, t);
    /* remove_control_chars */
    size_t m = 0;
    for (size_t i = 0; i < a->n; i++)
        if (!in_ranges(eva_tt_control, EVA_TT_CONTROL_N, a->v[i])) a->v[m++] = a->v[i];
    a->n = m;
    /* NFC */
    t->n = 0;
    if (nfc(t, a->v, a->n)) return -1;
    cpv_swap(a, t);
    return (a->oom || t->oom) ? -1 : 0;
}

/* ftfy.fix_text(text) with default config (less fix_encoding): in -> out. */
static int ftfy_fix_text(cpv *out, const cpv *in) {
    int unescape = 1;
    size_t pos = 0;
    cpv seg = {0}, prev = {0}, tmp = {0};
    int rc = 0;
    while (pos < in->n && rc == 0) {
        size_t end = pos;
        while (end < in->n && in->v[end] != '\n') end++;
        if (end < in->n) end++;
        if (end - pos > 1000000) end = pos + 1000000; /* max_decode_length */
        for (size_t i = pos; i < end && unescape; i++)
            if (in->v[i] == '<') unescape = 0;
        seg.n = 0;
        cpv_append(&seg, in->v + pos, end - pos);
        for (;;) {
            prev.n = 0;
            cpv_append(&prev, seg.v, seg.n);
            if (ftfy_round(&seg, &tmp, unescape) || prev.oom) {
                rc = -1;
                break;
            }
            if (cpv_eq(&seg, &prev)) break;
        }
        cpv_append(out, seg.v, seg.n);
        pos = end;
    }
    if (seg.oom || out->oom) rc = -1;
    cpv_free(&seg);
    cpv_free(&prev);
    cpv_free(&tmp);
    return rc;
}

/* ---------------------------------------------------------------- clean ---------------------- */

static void py_lower(cpv *out, const uint32_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c == 0x3A3) { /* Final_Sigma as CPython's handle_capital_sigma */
            size_t j = i;
            int fin = 0;
            while (j > 0 && in_ranges(eva_tt_case_ignorable, EVA_TT_CASE_IGNORABLE_N, s[j - 1])) j--;
            if (j > 0 && in_ranges(eva_tt_cased, EVA_TT_CASED_N, s[j - 1])) {
                size_t k = i + 1;
                while (k < n && in_ranges(eva_tt_case_ignorable, EVA_TT_CASE_IGNORABLE_N, s[k])) k++;
                fin = k == n || !in_ranges(eva_tt_cased, EVA_TT_CASED_N, s[k]);
            }
            cpv_push(out, fin ? 0x3C2 : 0x3C3);
            continue;
        }
        if (c < 0x80) {
            cpv_push(out, (c >= 'A' && c <= 'Z') ? c + 32 : c);
            continue;
        }
        const char *v = cp_lookup(eva_tt_lower_exc, EVA_TT_LOWER_EXC_N, c);
        if (v) cpv_push_utf8(out, v);
        else cpv_push(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
    }
}

/* _clean_lower on code points: in -> out. */
static int clean_cp(cpv *out, const cpv *in) {
    cpv a = {0}, b = {0};
    int rc = ftfy_fix_text(&a, in);
    if (rc == 0) {
        html_unescape(&b, a.v, a.n);
        a.n = 0;
        html_unescape(&a, b.v, b.n);
        /* strip (isspace), then '\s+' -> ' ', then strip */
        size_t lo = 0, hi = a.n;
        while (lo < hi && is_space_py(a.v[lo])) lo++;
        while (hi > lo && is_space_py(a.v[hi - 1])) hi--;
        b.n = 0;
        for (size_t i = lo; i < hi;) {
            if (is_space_re(a.v[i])) {
                while (i < hi && is_space_re(a.v[i])) i++;
                cpv_push(&b, ' ');
            } else {
                cpv_push(&b, a.v[i++]);
            }
        }
        lo = 0;
        hi = b.n;
        while (lo < hi && is_space_py(b.v[lo])) lo++;
        while (hi > lo && is_space_py(b.v[hi - 1])) hi--;
        if (hi > lo) py_lower(out, b.v + lo, hi - lo);
        if (a.oom || b.oom || out->oom) rc = -1;
    }
    cpv_free(&a);
    cpv_free(&b);
    return rc;
}

eva_status eva_tokenizer_clean(const char *text, size_t len, char **out, size_t *out_len) {
    cpv in = {0}, o = {0};
    decode_utf8(&in, text, len);
    int rc = in.oom ? -1 : clean_cp(&o, &in);
    cpv_free(&in);
    if (rc) {
        cpv_free(&o);
        return eva_fail(EVA_ERR_NOMEM, "tokenizer: out of memory cleaning a text of %zu bytes", len);
    }
    *out = encode_utf8(o.v, o.n, out_len);
    cpv_free(&o);
    if (!*out) return eva_fail(EVA_ERR_NOMEM, "tokenizer: out of memory");
    return EVA_OK;
}

/* ---------------------------------------------------------------- the tokenizer ------------- */

typedef struct {
    uint64_t key; /* (a << 32 | b) + 1; 0 = empty */
    int32_t rank;
} merge_slot;

typedef struct {
    uint64_t hash; /* 0 = empty */
    uint32_t key_off, key_len;
    uint32_t ids_off, ids_len;
} cache_slot;

struct eva_tokenizer {
    int32_t byte_id[256]; /* byte -> id of its symbol (ids 0..255) */
    merge_slot *merges;
    size_t merge_mask;
    cache_slot *cache;
    size_t cache_mask, cache_n;
    char *keys;
    size_t keys_n, keys_cap;
    int32_t *ids;
    size_t ids_n, ids_cap;
    int32_t *work; /* the word being merged */
    size_t work_cap;
    int32_t *scratch; /* bpe_merge's list and heap */
    size_t scratch_cap;
};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ? h : 1;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static int32_t merge_rank(const eva_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    for (size_t i = mix64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        if (t->merges[i].key == key) return t->merges[i].rank;
        if (t->merges[i].key == 0) return -1;
    }
}

/* The 256 byte symbols in id order (docs/model.md §6 step 1-2). */
static void byte_order(int order[256]) {
    int n = 0, seen[256] = {0};
    for (int b = 33; b <= 126; b++) order[n++] = b, seen[b] = 1;
    for (int b = 161; b <= 172; b++) order[n++] = b, seen[b] = 1;
    for (int b = 174; b <= 255; b++) order[n++] = b, seen[b] = 1;
    for (int b = 0; b < 256; b++)
        if (!seen[b]) order[n++] = b;
}

static uint32_t byte_cp(int b) { /* bytes_to_unicode() */
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (uint32_t)b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    return 256u + (uint32_t)n;
}

/* Load-time map: symbol string (byte-encoded, UTF-8) -> id. */
typedef struct {
    char **key;
    int32_t *id;
    size_t mask;
} strmap;

static int strmap_put(strmap *m, char *k, int32_t id) {
    for (size_t i = hash_bytes(k, strlen(k)) & m->mask;; i = (i + 1) & m->mask) {
        if (!m->key[i]) {
            m->key[i] = k;
            m->id[i] = id;
            return 0;
        }
        if (!strcmp(m->key[i], k)) return -1; /* duplicate */
    }
}

static int32_t strmap_get(const strmap *m, const char *k, size_t n) {
    for (size_t i = hash_bytes(k, n) & m->mask;; i = (i + 1) & m->mask) {
        if (!m->key[i]) return -1;
        if (strlen(m->key[i]) == n && !memcmp(m->key[i], k, n)) return m->id[i];
    }
}

void eva_tokenizer_free(eva_tokenizer *t) {
    if (!t) return;
    free(t->merges);
    free(t->cache);
    free(t->scratch);
    free(t->keys);
    free(t->ids);
    free(t->work);
    free(t);
}

/* The gzip stream gz[n] inflated into a NUL-terminated buffer (*out, *out_len); `what` names the
 * source in messages. At most 16 MiB of text (the merges file is 1.6 MiB). */
static eva_status gunzip_text(char **out, size_t *out_len, const unsigned char *gz, size_t n, const char *what) {
    enum { MAX_TEXT = 16 << 20 };
    *out = NULL;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return eva_fail(EVA_ERR_NOMEM, "%s: cannot start zlib", what);
    size_t cap = 4u << 20, len = 0;
    char *buf = malloc(cap + 1);
    eva_status st = buf ? EVA_OK : eva_fail(EVA_ERR_NOMEM, "%s: out of memory reading merges", what);
    zs.next_in = (unsigned char *)gz;
    zs.avail_in = (uInt)n;
    int z = Z_OK;
    while (st == EVA_OK && z != Z_STREAM_END) {
        if (len == cap) {
            char *nb = cap < MAX_TEXT ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb) {
                st = eva_fail(EVA_ERR_FORMAT, "%s: more than %d MiB of text: not a merges file", what, MAX_TEXT >> 20);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        zs.next_out = (unsigned char *)buf + len;
        zs.avail_out = (uInt)(cap - len);
        z = inflate(&zs, Z_NO_FLUSH);
        len = cap - zs.avail_out;
        if (z != Z_OK && z != Z_STREAM_END)
            st = eva_fail(EVA_ERR_FORMAT, "%s: not a readable gzip file", what);
    }
    inflateEnd(&zs);
    if (st != EVA_OK) {
        free(buf);
        return st;
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return EVA_OK;
}

/* The whole file at `path` (at most 64 MiB) in *out. */
static eva_status read_small_file(unsigned char **out, size_t *n, const char *path) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return eva_fail(EVA_ERR_IO, "%s: cannot open the BPE merges file", path);
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > (64 << 20)) {
        fclose(f);
        return eva_fail(EVA_ERR_FORMAT, "%s: not a merges file (not a regular file of at most 64 MiB)", path);
    }
    *n = (size_t)sb.st_size;
    *out = malloc(*n + 1);
    size_t got = *out ? fread(*out, 1, *n, f) : 0;
    fclose(f);
    if (!*out || got != *n) {
        free(*out);
        *out = NULL;
        return eva_fail(EVA_ERR_IO, "%s: cannot read the BPE merges file", path);
    }
    return EVA_OK;
}

/* The merges text: the copy compiled into the library (ref/input/data/, sha256 checked at build
 * time), or the gzip file at bpe_path. */
static eva_status load_merges_text(char **buf, size_t *len, const char *bpe_path) {
    if (!bpe_path) {
        size_t n = 0;
        const unsigned char *gz = eva_input_embedded_file("bpe_simple_vocab_16e6.txt.gz", &n);
        if (!gz) return eva_fail(EVA_ERR_INTERNAL, "tokenizer: this build has no merges file compiled in");
        return gunzip_text(buf, len, gz, n, "bpe_simple_vocab_16e6.txt.gz (built in)");
    }
    unsigned char *gz = NULL;
    size_t n = 0;
    eva_status st = read_small_file(&gz, &n, bpe_path);
    if (st == EVA_OK) st = gunzip_text(buf, len, gz, n, bpe_path);
    free(gz);
    return st;
}

eva_status eva_tokenizer_open(eva_tokenizer **out, const char *bpe_path) {
    *out = NULL;
    const char *path = bpe_path ? bpe_path : "bpe_simple_vocab_16e6.txt.gz (built in)";
    char *buf = NULL;
    size_t n = 0;
    eva_status lst = load_merges_text(&buf, &n, bpe_path);
    if (lst != EVA_OK) return lst;
    (void)n;

    eva_status st = EVA_OK;
    eva_tokenizer *t = calloc(1, sizeof *t);
    strmap sm = {0};
    sm.mask = (1u << 18) - 1;
    sm.key = calloc(sm.mask + 1, sizeof *sm.key);
    sm.id = calloc(sm.mask + 1, sizeof *sm.id);
    char *names = malloc(512 * 8); /* the 512 byte symbols (with and without </w>), UTF-8 */
    char **merged = calloc(N_MERGES, sizeof *merged);
    if (t) {
        t->merge_mask = (1u << 17) - 1;
        t->merges = calloc(t->merge_mask + 1, sizeof *t->merges);
    }
    if (!t || !sm.key || !sm.id || !names || !merged || !t->merges) {
        st = eva_fail(EVA_ERR_NOMEM, "%s: out of memory building the vocabulary", path);
        goto done;
    }
    int order[256];
    byte_order(order);
    for (int i = 0; i < 256; i++) {
        int b = order[i];
        t->byte_id[b] = i;
        char *s = names + i * 8, *s2 = names + (256 + i) * 8;
        int k = (int)utf8proc_encode_char((utf8proc_int32_t)byte_cp(b), (utf8proc_uint8_t *)s);
        s[k] = 0;
        memcpy(s2, s, (size_t)k);
        memcpy(s2 + k, "</w>", 5);
        strmap_put(&sm, s, i);
        strmap_put(&sm, s2, 256 + i);
    }
    /* lines: 0 = a header ('"bpe_simple_vocab_16e6.txt#version: 0.2'), then "a b" */
    char *p = buf, *line_end = strchr(p, '\n');
    int header_ok = 0;
    if (line_end) {
        *line_end = 0;
        header_ok = strstr(buf, "#version") != NULL;
        *line_end = '\n';
    }
    if (!header_ok) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: not a CLIP merges file (no #version header)", path);
        goto done;
    }
    p = line_end + 1;
    for (int r = 0; r < N_MERGES; r++) {
        char *e = strchr(p, '\n');
        if (!e) e = p + strlen(p);
        char *sp = memchr(p, ' ', (size_t)(e - p));
        if (!sp || e == p) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: merges line %d is malformed", path, r + 1);
            goto done;
        }
        int32_t a = -1, b = -1;
        size_t la = (size_t)(sp - p), lb = (size_t)(e - sp - 1);
        a = strmap_get(&sm, p, la);
        b = strmap_get(&sm, sp + 1, lb);
        if (a < 0 || b < 0) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: merges line %d names an unknown symbol", path, r + 1);
            goto done;
        }
        merged[r] = malloc(la + lb + 1);
        if (!merged[r]) {
            st = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        memcpy(merged[r], p, la);
        memcpy(merged[r] + la, sp + 1, lb);
        merged[r][la + lb] = 0;
        if (strmap_put(&sm, merged[r], 512 + r)) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: merges line %d repeats a symbol", path, r + 1);
            goto done;
        }
        uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
        size_t i = mix64(key) & t->merge_mask;
        while (t->merges[i].key) i = (i + 1) & t->merge_mask;
        t->merges[i].key = key;
        t->merges[i].rank = r;
        if (!*e) {
            if (r + 1 < N_MERGES) {
                st = eva_fail(EVA_ERR_FORMAT, "%s: only %d merges, expected %d", path, r + 1, N_MERGES);
                goto done;
            }
            break;
        }
        p = e + 1;
    }
    t->cache_mask = 4095;
    t->cache = calloc(t->cache_mask + 1, sizeof *t->cache);
    if (!t->cache) st = eva_fail(EVA_ERR_NOMEM, "tokenizer: out of memory");
done:
    if (merged)
        for (int r = 0; r < N_MERGES; r++) free(merged[r]);
    free(merged);
    free(names);
    free(sm.key);
    free(sm.id);
    free(buf);
    if (st != EVA_OK) {
        eva_tokenizer_free(t);
        return st;
    }
    *out = t;
    return EVA_OK;
}

static int push_ids(eva_tokenizer *t, const int32_t *v, size_t n) {
    if (t->ids_n + n > t->ids_cap) {
        size_t cap = t->ids_cap ? t->ids_cap : 4096;
        while (cap < t->ids_n + n) cap *= 2;
        int32_t *x = realloc(t->ids, cap * sizeof *x);
        if (!x) return -1;
        t->ids = x;
        t->ids_cap = cap;
    }
    memcpy(t->ids + t->ids_n, v, n * sizeof *v);
    t->ids_n += n;
    return 0;
}

static int cache_grow(eva_tokenizer *t) {
    size_t nm = t->cache_mask * 2 + 1;
    cache_slot *c = calloc(nm + 1, sizeof *c);
    if (!c) return -1;
    for (size_t i = 0; i <= t->cache_mask; i++) {
        if (!t->cache[i].hash) continue;
        size_t j = t->cache[i].hash & nm;
        while (c[j].hash) j = (j + 1) & nm;
        c[j] = t->cache[i];
    }
    free(t->cache);
    t->cache = c;
    t->cache_mask = nm;
    return 0;
}

/* Bounds of the BPE cache: words longer than this are not cached; past either total the cache is
 * emptied (open_clip's cache is unbounded; its contents never change a result). */
#define EVA_BPE_CACHE_WORD 256
#define EVA_BPE_CACHE_ENTRIES (1 << 16)
#define EVA_BPE_CACHE_BYTES ((size_t)8 << 20)

static void cache_clear(eva_tokenizer *t) {
    memset(t->cache, 0, (t->cache_mask + 1) * sizeof *t->cache);
    t->cache_n = t->keys_n = t->ids_n = 0;
}

/* Stores word s[0..n) -> ids w[0..m) in the cache (when small enough); *res = the ids to use. */
static int cache_store(eva_tokenizer *t, uint64_t h, const char *s, size_t n, const int32_t *w, size_t m,
                       const int32_t **res) {
    *res = w;
    if (n > EVA_BPE_CACHE_WORD) return 0;
    if (t->cache_n + 1 > EVA_BPE_CACHE_ENTRIES || t->keys_n + n > EVA_BPE_CACHE_BYTES ||
        (t->ids_n + m) * sizeof(int32_t) > EVA_BPE_CACHE_BYTES)
        cache_clear(t);
    if ((t->cache_n + 1) * 2 > t->cache_mask + 1 && cache_grow(t)) return -1;
    size_t i = h & t->cache_mask;
    while (t->cache[i].hash) i = (i + 1) & t->cache_mask;
    if (t->keys_n + n > t->keys_cap) {
        size_t cap = t->keys_cap ? t->keys_cap : 65536;
        while (cap < t->keys_n + n) cap *= 2;
        char *k = realloc(t->keys, cap);
        if (!k) return -1;
        t->keys = k;
        t->keys_cap = cap;
    }
    memcpy(t->keys + t->keys_n, s, n);
    size_t ids_off = t->ids_n;
    if (push_ids(t, w, m)) return -1;
    t->cache[i] = (cache_slot){h, (uint32_t)t->keys_n, (uint32_t)n, (uint32_t)ids_off, (uint32_t)m};
    t->keys_n += n;
    t->cache_n++;
    *res = t->ids + ids_off;
    return 0;
}

/* BPE merges of one word w[0..n) in place (*m = resulting length), exactly as open_clip's
 * SimpleTokenizer.bpe: repeatedly the adjacent pair of lowest merge rank is merged, every
 * occurrence, left to right without overlap. Here with a linked list of symbols and a min-heap of
 * (rank, position) pairs: O(n log n) per word instead of O(n^2). Equivalence: a merge of rank r
 * creates the symbol 512 + r, and every merge involving that symbol has a rank above r, so the
 * heap yields all pairs of rank r, in position order, before any pair created by merging them;
 * an entry is stale (skipped) when the pair at its position no longer has its rank. */
typedef struct {
    int32_t rank, pos;
} bpe_ent;

static int bpe_less(bpe_ent a, bpe_ent b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void heap_push(bpe_ent *h, size_t *hn, bpe_ent e) {
    size_t i = (*hn)++;
    while (i > 0 && bpe_less(e, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

/* Moves e down from slot i of the heap h[0..n). */
static void heap_sift_down(bpe_ent *h, size_t n, size_t i, bpe_ent e) {
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bpe_less(h[c + 1], h[c])) c++;
        if (!bpe_less(h[c], e)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
}

static bpe_ent heap_pop(bpe_ent *h, size_t *hn) {
    bpe_ent top = h[0], last = h[--(*hn)];
    if (*hn) heap_sift_down(h, *hn, 0, last);
    return top;
}

static void bpe_push_pair(const eva_tokenizer *t, const int32_t *sym, const int32_t *next, int32_t pos, bpe_ent *h,
                          size_t *hn) {
    if (pos < 0 || next[pos] < 0) return;
    int32_t r = merge_rank(t, sym[pos], sym[next[pos]]);
    if (r >= 0) heap_push(h, hn, (bpe_ent){r, pos});
}

static int bpe_merge(eva_tokenizer *t, int32_t *w, size_t n, size_t *m) {
    /* scratch: sym, prev, next (n each) and a heap of at most n - 1 + 2 (n - 1) entries */
    size_t need = 3 * n + 2 * (3 * n);
    if (need > t->scratch_cap) {
        int32_t *x = realloc(t->scratch, need * sizeof *x);
        if (!x) return -1;
        t->scratch = x;
        t->scratch_cap = need;
    }
    int32_t *sym = t->scratch, *prev = sym + n, *next = prev + n;
    bpe_ent *h = (bpe_ent *)(next + n);
    size_t hn = 0;
    for (size_t k = 0; k < n; k++) {
        sym[k] = w[k];
        prev[k] = (int32_t)k - 1;
        next[k] = k + 1 < n ? (int32_t)k + 1 : -1;
    }
    for (size_t k = 0; k + 1 < n; k++) { /* the initial pairs, then one O(n) heapify */
        int32_t r = merge_rank(t, sym[k], sym[k + 1]);
        if (r >= 0) h[hn++] = (bpe_ent){r, (int32_t)k};
    }
    for (size_t k = hn / 2; k-- > 0;) heap_sift_down(h, hn, k, h[k]);
    while (hn > 0) {
        bpe_ent e = heap_pop(h, &hn);
        int32_t p = e.pos, q = next[p];
        if (sym[p] < 0 || q < 0 || merge_rank(t, sym[p], sym[q]) != e.rank) continue; /* stale */
        sym[p] = 512 + e.rank;
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        bpe_push_pair(t, sym, next, prev[p], h, &hn);
        bpe_push_pair(t, sym, next, p, h, &hn);
    }
    size_t o = 0;
    for (int32_t k = 0; k >= 0; k = next[k]) w[o++] = sym[k];
    *m = o;
    return 0;
}

/* BPE ids of one pre-token (its UTF-8 bytes), through the cache; appended to *out. */
static int bpe_token(eva_tokenizer *t, const char *s, size_t n, int32_t **out, size_t *on, size_t *ocap) {
    uint64_t h = hash_bytes(s, n);
    size_t i = h & t->cache_mask;
    for (; t->cache[i].hash; i = (i + 1) & t->cache_mask) {
        const cache_slot *c = &t->cache[i];
        if (c->hash == h && c->key_len == n && !memcmp(t->keys + c->key_off, s, n)) break;
    }
    const int32_t *res;
    size_t rn;
    if (t->cache[i].hash) {
        res = t->ids + t->cache[i].ids_off;
        rn = t->cache[i].ids_len;
    } else {
        if (n > t->work_cap) {
            int32_t *w = realloc(t->work, n * sizeof *w);
            if (!w) return -1;
            t->work = w;
            t->work_cap = n;
        }
        int32_t *w = t->work;
        size_t m = n;
        if (n == 15 && !memcmp(s, "<start_of_text>", 15)) {
            w[0] = EVA_TOKEN_SOT; /* open_clip's cache maps the special tokens to themselves */
            m = 1;
        } else if (n == 13 && !memcmp(s, "<end_of_text>", 13)) {
            w[0] = EVA_TOKEN_EOT;
            m = 1;
        } else {
            for (size_t k = 0; k < n; k++) w[k] = t->byte_id[(unsigned char)s[k]];
            w[n - 1] += 256;
            if (n > 1 && bpe_merge(t, w, n, &m)) return -1;
        }
        if (cache_store(t, h, s, n, w, m, &res)) return -1;
        rn = m;
    }
    if (*on + rn > *ocap) {
        size_t cap = *ocap ? *ocap * 2 : 64;
        while (cap < *on + rn) cap *= 2;
        int32_t *x = realloc(*out, cap * sizeof *x);
        if (!x) return -1;
        *out = x;
        *ocap = cap;
    }
    memcpy(*out + *on, res, rn * sizeof *res);
    *on += rn;
    return 0;
}

static int cp_is_letter(uint32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}
static int cp_is_number(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}
static int cp_unmatched(uint32_t c) { return in_ranges(eva_tt_unmatched, EVA_TT_UNMATCHED_N, c); }

/* Caseless literal match of an ASCII pattern at s[i..]: regex IGNORECASE (simple folding) lets
 * 's' also match U+017F; the text is already lower case. Returns the length or 0. */
static size_t match_lit(const uint32_t *s, size_t n, size_t i, const char *lit) {
    size_t k = 0;
    for (; lit[k]; k++) {
        if (i + k >= n) return 0;
        uint32_t c = s[i + k];
        if (c == (uint32_t)lit[k]) continue;
        if (lit[k] == 's' && (c == 0x17F || c == 'S')) continue;
        if (c < 0x80 && lit[k] >= 'a' && lit[k] <= 'z' && c == (uint32_t)lit[k] - 32) continue;
        if (lit[k] == 'k' && c == 0x212A) continue;
        return 0;
    }
    return k;
}

eva_status eva_tokenizer_encode_raw(eva_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *nids) {
    *ids = NULL;
    *nids = 0;
    cpv in = {0}, s = {0};
    size_t on = 0, ocap = 0;
    int32_t *out = NULL;
    char *tokb = NULL;
    size_t tokcap = 0;
    decode_utf8(&in, text, len);
    int rc = in.oom ? -1 : clean_cp(&s, &in);
    cpv_free(&in);
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t i = 0; rc == 0 && i < s.n;) {
        uint32_t c = s.v[i];
        size_t e = 0;
        if (c == '<') {
            e = match_lit(s.v, s.n, i, "<start_of_text>");
            if (!e) e = match_lit(s.v, s.n, i, "<end_of_text>");
        } else if (c == '\'') {
            for (int k = 0; k < 7 && !e; k++) e = match_lit(s.v, s.n, i, contractions[k]);
        }
        if (e) {
            e += i;
        } else if (cp_is_letter(c)) {
            e = i + 1;
            while (e < s.n && cp_is_letter(s.v[e])) e++;
        } else if (cp_is_number(c)) {
            e = i + 1;
        } else if (cp_unmatched(c)) {
            i++;
            continue;
        } else {
            e = i + 1;
            while (e < s.n && !cp_is_letter(s.v[e]) && !cp_is_number(s.v[e]) && !cp_unmatched(s.v[e])) e++;
        }
        /* UTF-8 bytes of s[i..e) */
        if (4 * (e - i) + 1 > tokcap) {
            tokcap = 4 * (e - i) + 64;
            char *x = realloc(tokb, tokcap);
            if (!x) {
                rc = -1;
                break;
            }
            tokb = x;
        }
        size_t bn = 0;
        for (size_t k = i; k < e; k++)
            bn += (size_t)utf8proc_encode_char((utf8proc_int32_t)s.v[k], (utf8proc_uint8_t *)tokb + bn);
        if (bpe_token(t, tokb, bn, &out, &on, &ocap)) rc = -1;
        i = e;
    }
    free(tokb);
    cpv_free(&s);
    if (rc) {
        free(out);
        return eva_fail(EVA_ERR_NOMEM, "tokenizer: out of memory on a text of %zu bytes", len);
    }
    *ids = out;
    *nids = on;
    return EVA_OK;
}

eva_status eva_tokenizer_encode(eva_tokenizer *t, int32_t *ids, const char *text, int context_length) {
    return eva_tokenizer_encode_n(t, ids, text, strlen(text), context_length);
}

eva_status eva_tokenizer_encode_n(eva_tokenizer *t, int32_t *ids, const char *text, size_t len, int context_length) {
    if (context_length < 1)
        return eva_fail(EVA_ERR_INVALID_ARG, "tokenizer: context length %d must be at least 1", context_length);
    int32_t *raw;
    size_t n;
    eva_status st = eva_tokenizer_encode_raw(t, text, len, &raw, &n);
    if (st != EVA_OK) return st;
    size_t L = (size_t)context_length;
    memset(ids, 0, L * sizeof *ids);
    ids[0] = EVA_TOKEN_SOT;
    size_t k = 1;
    for (size_t i = 0; i < n && k < L; i++) ids[k++] = raw[i];
    if (k < L) ids[k] = EVA_TOKEN_EOT;
    else ids[L - 1] = EVA_TOKEN_EOT;
    free(raw);
    return EVA_OK;
}
