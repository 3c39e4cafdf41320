// make_goldens.js - encode varied strings with Hugging Face's `tokenizers`
// (the Rust core's Node bindings, pinned in package.json) and write them as
// JSON lines for tests/test_bpe.c. Run from the repository root:
//   (cd tests/tokenizer_ref && npm install) &&
//   node tests/tokenizer_ref/make_goldens.js ../shared/data/tokenizers/smollm2_tokenizer.json \
//        ../shared/data/traces/sharegpt_v3_filtered_500.json > tests/data/smollm2_tokenizer_goldens.jsonl
// With a third argument gpt2, llama3 or qwen2 the tokenizer.json's
// pre_tokenizer is replaced by that family's (as in gpt2's, Meta-Llama-3's and
// Qwen2.5's published tokenizer.json; Llama-3 also sets model.ignore_merges)
// and fewer strings are written (the hand-written ones and 40 prompts): the
// family's pre-tokenizer on SmolLM2's vocabulary. The variant is recorded in
// the header ("# variant-json: {...}") so the test rebuilds the same file.
// Variant "options" exercises the rest: Digits grouping digits, ByteLevel's
// add_prefix_space, lstrip on <|im_start|> and rstrip on <|im_end|>.
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');
const version = require('tokenizers/package.json').version;

const [tokPath, sharegptPath, variant] = process.argv.slice(2);
const SPLIT = (re, trim) => ({
  type: 'Sequence',
  pretokenizers: [
    { type: 'Split', pattern: { Regex: re }, behavior: 'Isolated', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: trim, use_regex: false },
  ],
});
const VARIANTS = {
  gpt2: { pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true } },
  llama3: {
    pre_tokenizer: SPLIT("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", true),
    ignore_merges: true,
  },
  // not a published family: the remaining options (Digits without
  // individual_digits, ByteLevel's add_prefix_space, added tokens' lstrip/rstrip)
  options: {
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Digits', individual_digits: false },
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      ],
    },
    strip: { 1: 'lstrip', 2: 'rstrip' },
  },
  qwen2: {
    pre_tokenizer: SPLIT("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", false),
  },
};
if (variant && !VARIANTS[variant]) {
  console.error(`unknown variant ${variant} (gpt2, llama3, qwen2, options)`);
  process.exit(2);
}
if (!tokPath || !sharegptPath) {
  console.error('usage: node make_goldens.js TOKENIZER_JSON SHAREGPT_JSON > goldens.jsonl');
  process.exit(2);
}

const texts = [
  '', ' ', '  ', '\n', '\n\n\n', '\t', ' \t \n ', 'a', 'Hello', 'Hello world', ' Hello world',
  'Hello  world   with    runs     of      spaces', 'trailing spaces   ', '   leading spaces',
  'line one\nline two\r\nline three\rend', 'tabs\tand\t\ttabs', 'mixed \n \t\n  \n',
  "I'm sure it's fine, we'll see, they've gone, I'd say, you're right, it'S LOUD",
  "Don't stop 'til you get enough", 'HELLO WORLD', 'hello_world snake_case camelCaseWord',
  '12345', '3.14159', '1,000,000 and 2024-06-01', 'x = 42 + 7 * 3', 'ABC123def456',
  'Arabic-Indic digits ١٢٣٤٥ and Devanagari ४२ and fullwidth １２３', 'Roman numerals Ⅻ ⅷ and fractions ½ ¾ ²³',
  'Thai digits ๑๒๓ and Bengali ১২৩', 'circled ① ② ③',
  '日本語のテキストです。', '中文文本，包含标点符号！', '한국어 문장입니다.', 'Ελληνικά κείμενα', 'Русский текст, ёжик.',
  'עברית מימין לשמאל', 'العربية نص', 'हिन्दी पाठ', 'emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️',
  '🤖🤖🤖', 'Ünïcödé àccénts çà et là, naïve café', 'ß ẞ ﬁ ligature ǅ', 'zero\u200bwidth\u200djoiner',
  'non\u00a0breaking\u00a0space', 'em—dash – en-dash … ellipsis “quotes” ‘single’', '∀x∈ℝ: x² ≥ 0 ⇒ √x ∈ ℝ',
  '<|endoftext|>', '<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n',
  'text<|im_end|>text', ' <|im_start|> spaced <|im_end|> ', '<|im_start|><|im_end|><|endoftext|>',
  '<repo_name>pagoda<file_sep>main.c<filename>x.py', '<|im_start', 'im_start|>', '<<|endoftext|>>',
  'def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n',
  '#include <stdio.h>\nint main(void) {\n\tprintf("hi %d\\n", 42);\n\treturn 0;\n}\n',
  'for (int i = 0; i < n; ++i) { a[i] += b[i] * c; }', 'const x = arr.map((v) => v ** 2).filter(Boolean);',
  'SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;', '<div class="x">&amp; &lt;tag&gt;</div>',
  '{"key": [1, 2, 3], "nested": {"a": null}}', 'https://example.com/path?q=1&r=two#frag', 'user@example.org',
  '$ ls -la | grep "^d" > out.txt 2>&1', '    indented code\n        more indented\n', '!!!???...,,,;;;',
  '((()))[[[]]]{{{}}}', 'a  <|im_start|>  b  <|im_end|>  c', 'x\u3000<|im_start|>\u00a0y<|im_end|>\u2003z',
  '<|im_end|>\n\n<|im_start|>', '12 345 6789 ٣٤٥', '\\\\escaped\\\\backslashes', 'a\u0301 combining acute', '\u3000ideographic\u3000space',
  'ragged   \n   whitespace\t\t\n\n   end', 'A'.repeat(300), 'ab'.repeat(200), ' '.repeat(50) + 'x', '9'.repeat(40),
];
const data = JSON.parse(fs.readFileSync(sharegptPath, 'utf8'));
// The shared data's texts are not copied into the repository: their goldens
// name the row ({"sharegpt": ROW}) and test_bpe.c reads its first human turn
// from the same file.
let shared = 0;
const rowOf = new Map();
for (const [r, row] of data.entries()) {
  const turn = (row.conversations || []).find((c) => c.from === 'human');
  if (!turn || typeof turn.value !== 'string' || turn.value.includes('\u0000')) continue;
  texts.push(turn.value);
  if (!rowOf.has(turn.value)) rowOf.set(turn.value, r);
  if (++shared === (variant ? 40 : 140)) break;
}

(async () => {
  const json = JSON.parse(fs.readFileSync(tokPath, 'utf8'));
  if (variant) {
    json.pre_tokenizer = VARIANTS[variant].pre_tokenizer;
    if (VARIANTS[variant].ignore_merges) json.model.ignore_merges = true;
    for (const [id, flag] of Object.entries(VARIANTS[variant].strip || {}))
      json.added_tokens.find((t) => t.id === Number(id))[flag] = true;
  }
  const tok = Tokenizer.fromString(JSON.stringify(json));
  const dflt = await tok.encode('Hello', null, { addSpecialTokens: true });
  const plain = await tok.encode('Hello', null, { addSpecialTokens: false });
  const out = [];
  out.push(`# Golden encodings of the SmolLM2 tokenizer by Hugging Face tokenizers (npm package "tokenizers" ${version}, the Rust core's Node bindings)`);
  if (variant) out.push(`# variant-json: ${JSON.stringify(VARIANTS[variant])}`);
  out.push(`# made ${new Date().toISOString().slice(0, 10)} with: (cd tests/tokenizer_ref && npm install) && node tests/tokenizer_ref/make_goldens.js ../shared/data/tokenizers/${path.basename(tokPath)} ../shared/data/traces/${path.basename(sharegptPath)}${variant ? ' ' + variant : ''} > tests/data/smollm2_tokenizer${variant ? '_' + variant + 'pre' : ''}_goldens.jsonl`);
  out.push(`# encode(text, null, {addSpecialTokens: false}); the default (addSpecialTokens: true) adds ${JSON.stringify(dflt.getIds())} vs ${JSON.stringify(plain.getIds())} for "Hello", i.e. ${dflt.getIds().length === plain.getIds().length ? 'nothing' : 'something'} (post_processor is null)`);
  out.push(`# ${texts.length} strings: ${texts.length - shared} written by hand (whitespace, code, emoji, CJK, Unicode digits, special tokens, empty) and (by row index, read from the file at test time) the first ${shared} human turns of ${path.basename(sharegptPath)}`);
  for (const [k, text] of texts.entries()) {
    const e = await tok.encode(text, null, { addSpecialTokens: false });
    const ids = Array.from(e.getIds());
    out.push(JSON.stringify(k < texts.length - shared ? { text, ids } : { sharegpt: rowOf.get(text), ids }));
  }
  process.stdout.write(out.join('\n') + '\n');
})();
