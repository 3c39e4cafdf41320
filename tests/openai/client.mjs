// client.mjs - a standard OpenAI client (the `openai` npm package) against
// `pagoda serve`: lists models, completes, chats, and streams both, checking
// what comes back. Usage: node client.mjs BASE_URL (e.g. http://127.0.0.1:8000/v1).
// Exit 0 on success, 1 on a failed check, 77 when the package is not installed.
let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch {
  console.error('client.mjs: the openai package is not installed (run scripts/setup_openai_test.sh)');
  process.exit(77);
}

const baseURL = process.argv[2] || process.env.PAGODA_URL || 'http://127.0.0.1:8000/v1';
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
let failed = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed++;
}

const models = await client.models.list();
const ids = [];
for await (const m of models) ids.push(m.id);
check(ids.length === 1, `models.list: ${JSON.stringify(ids)}`);
const model = ids[0];

const c = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 12, temperature: 0 });
check(c.object === 'text_completion' && c.choices.length === 1 && c.choices[0].text.length > 0,
      `completions.create: ${JSON.stringify(c.choices[0].text)}`);
check(c.usage.completion_tokens === 12 && c.usage.prompt_tokens > 0, `usage ${JSON.stringify(c.usage)}`);

const stream = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 12, temperature: 0,
                                                 stream: true, stream_options: { include_usage: true } });
let text = '', usage = null, finish = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const ch of chunk.choices) {
    text += ch.text;
    if (ch.finish_reason) finish = ch.finish_reason;
  }
}
check(text === c.choices[0].text, `streamed completion equals the plain one: ${JSON.stringify(text)}`);
check(finish === 'length' && usage && usage.completion_tokens === 12, `stream finish ${finish}, usage ${JSON.stringify(usage)}`);

const chat = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Once upon a time' }],
                                                    max_tokens: 12, temperature: 0 });
check(chat.object === 'chat.completion' && chat.choices[0].message.role === 'assistant' &&
      chat.choices[0].message.content === c.choices[0].text,
      `chat.completions.create: ${JSON.stringify(chat.choices[0].message.content)}`);

const cs = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Once upon a time' }],
                                                  max_tokens: 12, temperature: 0, stream: true });
let ctext = '', role = null;
for await (const chunk of cs) {
  for (const ch of chunk.choices) {
    if (ch.delta.role) role = ch.delta.role;
    if (ch.delta.content) ctext += ch.delta.content;
  }
}
check(role === 'assistant' && ctext === chat.choices[0].message.content, `streamed chat: ${JSON.stringify(ctext)}`);

try {
  await client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 2 });
  check(false, 'unknown model is refused');
} catch (e) {
  check(e.status === 404 && e.error && e.error.code === 'model_not_found', `unknown model: ${e.status} ${e.message}`);
}
try {
  await client.completions.create({ model, prompt: 'x', max_tokens: -1 });
  check(false, 'max_tokens -1 is refused');
} catch (e) {
  check(e.status === 400 && e.error && e.error.param === 'max_tokens', `max_tokens -1: ${e.status} ${e.message}`);
}
process.exit(failed ? 1 : 0);
