// e2e.mjs - the official OpenAI Node SDK drives `earlystop serve` and
// `earlystop proxy` (in front of serve): chat and completions, streaming and
// not, n > 1, logprobs, errors.  Run by tests/test_node.c (make test) with
// ES_BIN pointing at the CLI; exits non-zero on the first failure.
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const BIN = process.env.ES_BIN || 'build/earlystop';
const children = [];

// Start `earlystop CMD ... --port 0` and wait for its "listening on" line.
function start(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, [...args, '--port', '0', ...(process.env.ES_LOG ? [] : ['--quiet'])], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(p);
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start: ${out}`)), 20000);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    p.on('exit', (code) => reject(new Error(`${args[0]} exited with ${code}: ${out}`)));
  });
}

function stopAll() {
  for (const p of children) if (p.exitCode === null) p.kill('SIGTERM');
}

// Stops every server and checks that each exited with 0 (under ASan: no leak).
async function stopAndCheck() {
  const codes = await Promise.all(children.map((p) => (p.exitCode !== null ? p.exitCode
    : new Promise((resolve) => { p.on('exit', (code) => resolve(code)); p.kill('SIGTERM'); }))));
  assert.deepEqual(codes, codes.map(() => 0), `servers exited with ${codes}`);
}

const results = [];
async function check(name, fn) {
  try {
    await fn();
    results.push(name);
    console.log(`ok - ${name}`);
  } catch (e) {
    console.log(`not ok - ${name}\n  ${e.stack || e}`);
    stopAll();
    process.exit(1);
  }
}

const prompt = 'Compute ((7+6)*3)-5.\n';
const question = 'Compute ((7+6)*3)-5.';

// Drains a stream: per choice, its text, first delta, finish reason; the usage.
async function drain(stream, chat) {
  const texts = {}, finish = {}, firstDelta = {};
  let usage = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      const piece = chat ? (c.delta?.content ?? '') : (c.text ?? '');
      if (!(c.index in firstDelta)) firstDelta[c.index] = chat ? c.delta : { text: c.text };
      texts[c.index] = (texts[c.index] ?? '') + piece;
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  return { texts, finish, firstDelta, usage, chunks };
}

async function serveChecks(client) {
  await check('serve: models.list names the built-in model', async () => {
    const models = await client.models.list();
    assert.ok(models.data.some((m) => m.id === 'earlystop-builtin'));
  });

  let whole;
  await check('serve: chat, not streamed', async () => {
    whole = await client.chat.completions.create({
      model: 'earlystop-builtin', messages: [{ role: 'user', content: question }], seed: 42, max_tokens: 200,
    });
    assert.equal(whole.object, 'chat.completion');
    assert.equal(whole.choices.length, 1);
    assert.equal(whole.choices[0].message.role, 'assistant');
    assert.ok(whole.choices[0].message.content.length > 0);
    assert.ok(['stop', 'length'].includes(whole.choices[0].finish_reason));
    assert.equal(whole.usage.prompt_tokens, question.length + 2);
    assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + whole.usage.completion_tokens);
  });

  await check('serve: chat streamed = not streamed (same seed), role delta first, usage last', async () => {
    const stream = await client.chat.completions.create({
      model: 'earlystop-builtin', messages: [{ role: 'user', content: question }], seed: 42, max_tokens: 200,
      stream: true, stream_options: { include_usage: true },
    });
    const d = await drain(stream, true);
    assert.equal(d.firstDelta[0].role, 'assistant');
    assert.equal(d.texts[0], whole.choices[0].message.content);
    assert.equal(d.finish[0], whole.choices[0].finish_reason);
    assert.deepEqual(d.usage, whole.usage);
    assert.ok(d.chunks > 3);
  });

  await check('serve: completions n=3 with a seed: choice c is the request with seed + c', async () => {
    const r = await client.completions.create({ model: 'earlystop-builtin', prompt, n: 3, seed: 1000, max_tokens: 60 });
    assert.equal(r.choices.length, 3);
    for (let c = 0; c < 3; c++) {
      const one = await client.completions.create({ model: 'earlystop-builtin', prompt, seed: 1000 + c, max_tokens: 60 });
      assert.equal(r.choices[c].index, c);
      assert.equal(one.choices[0].text, r.choices[c].text);
    }
  });

  await check('serve: completions streamed with n=2, logprobs and a stop sequence', async () => {
    const stream = await client.completions.create({
      model: 'earlystop-builtin', prompt, n: 2, seed: 5, max_tokens: 80, logprobs: 2, stop: ['\n'], stream: true,
      stream_options: { include_usage: true },
    });
    let lp = 0;
    const texts = {}, finish = {};
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        texts[c.index] = (texts[c.index] ?? '') + c.text;
        if (c.logprobs) {
          lp += c.logprobs.tokens.length;
          assert.equal(c.logprobs.tokens.length, c.logprobs.token_logprobs.length);
          assert.ok(c.logprobs.top_logprobs.every((t) => Object.keys(t).length <= 2));
        }
        if (c.finish_reason) finish[c.index] = c.finish_reason;
      }
    }
    assert.deepEqual(Object.keys(texts).sort(), ['0', '1']);
    for (const i of [0, 1]) {
      assert.ok(!texts[i].includes('\n'));
      assert.equal(finish[i], 'stop');
    }
    assert.equal(lp, usage.completion_tokens);
  });

  await check('serve: chat n=2 streamed, logprobs of each token', async () => {
    const stream = await client.chat.completions.create({
      model: 'earlystop-builtin', messages: [{ role: 'user', content: question }], n: 2, max_tokens: 20,
      logprobs: true, top_logprobs: 3, stream: true,
    });
    const seen = new Set();
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        seen.add(c.index);
        for (const t of c.logprobs?.content ?? []) {
          assert.ok(t.logprob <= 0);
          assert.ok(t.top_logprobs.length <= 3);
        }
      }
    }
    assert.deepEqual([...seen].sort(), [0, 1]);
  });

  await check('serve: a bad request is a 400 BadRequestError naming the field', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'earlystop-builtin', messages: [{ role: 'user', content: question }], n: 0 }),
      (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'n');
    await assert.rejects(
      client.completions.create({ model: 'no-such-model', prompt }),
      (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
  });
}

async function proxyChecks(client) {
  await check('proxy: models.list and models.retrieve are the upstream\'s (asked with the proxy\'s upstream key)', async () => {
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['earlystop-builtin']);
    const m = await client.models.retrieve('earlystop-builtin');
    assert.equal(m.id, 'earlystop-builtin');
    assert.equal(m.object, 'model');
    await assert.rejects(client.models.retrieve('gpt-9'), (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
  });

  await check('proxy: chat, not streamed: a normal completion plus the "earlystop" object', async () => {
    const r = await client.chat.completions.create({
      model: 'earlystop-builtin', messages: [{ role: 'user', content: question }], seed: 42, max_tokens: 200,
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.match(r.choices[0].message.content, /So the answer is /);
    assert.equal(r.earlystop.samples, 1);
    assert.equal(typeof r.earlystop.answer, 'string');
    assert.ok(r.earlystop.probes >= 1);
    assert.ok(r.usage.completion_tokens >= r.earlystop.tokens_at_stop);
  });

  await check('proxy: chat streamed: role delta first, settled text, finish_reason, usage and summary last', async () => {
    const stream = await client.chat.completions.create({
      model: 'earlystop-builtin', messages: [{ role: 'user', content: question }], seed: 42, max_tokens: 200,
      stream: true, stream_options: { include_usage: true },
    });
    let summary = null, role = null, text = '', finish = null, usage = null;
    for await (const chunk of stream) {
      if (chunk.earlystop) summary = chunk.earlystop;
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        if (role === null) role = c.delta.role ?? '';
        text += c.delta.content ?? '';
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    const whole = await client.chat.completions.create({
      model: 'earlystop-builtin', messages: [{ role: 'user', content: question }], seed: 42, max_tokens: 200,
    });
    assert.equal(role, 'assistant');
    assert.equal(finish, 'stop');
    assert.equal(text, whole.choices[0].message.content);
    assert.equal(summary.answer, whole.earlystop.answer);
    assert.ok(usage.completion_tokens > 0);
  });

  await check('proxy: completions n=6, across-sample stop: the samples drawn and the voted answer', async () => {
    const r = await client.completions.create({
      model: 'earlystop-builtin', prompt, n: 6, seed: 3 << 20, max_tokens: 200,
      earlystop: { policy: 'dynasor:k=2+ac-beta:threshold=0.8' },
    });
    assert.equal(r.earlystop.samples_requested, 6);
    assert.equal(r.choices.length, r.earlystop.samples);
    assert.ok(r.earlystop.samples >= 1 && r.earlystop.samples <= 6);
    assert.equal(typeof r.earlystop.answer, 'string');
    r.choices.forEach((c, i) => assert.equal(c.index, i));
  });

  await check('proxy: completions n=3 streamed under esc: every choice ends, summary in the usage chunk', async () => {
    const stream = await client.completions.create({
      model: 'earlystop-builtin', prompt, n: 3, seed: 77, max_tokens: 150, stream: true,
      stream_options: { include_usage: true }, earlystop: { policy: 'esc:window=3' },
    });
    const d = await drain(stream, false);
    assert.deepEqual(Object.keys(d.finish).sort(), ['0', '1', '2']);
    assert.ok(d.usage.completion_tokens > 0);
  });

  await check('proxy: the upstream\'s 400 reaches the SDK as a BadRequestError', async () => {
    await assert.rejects(
      client.completions.create({ model: 'earlystop-builtin', prompt, top_p: 0.5 }),
      (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'top_p');
  });
}

async function main() {
  const serveUrl = await start(['serve', '--api-key', 'sk-test']);
  const client = new OpenAI({ baseURL: `${serveUrl}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 60000 });
  await check('serve: a wrong API key is a 401 AuthenticationError', async () => {
    const bad = new OpenAI({ baseURL: `${serveUrl}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  });
  await serveChecks(client);
  const proxyUrl = await start(['proxy', '--upstream', serveUrl, '--upstream-key', 'sk-test', '--policy',
    'dynasor:k=2+ac-beta', '--probe-every', '16', '--answer-type', 'number']);
  await proxyChecks(new OpenAI({ baseURL: `${proxyUrl}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120000 }));
  await check('servers exit 0 on SIGTERM', stopAndCheck);
  console.log(`# ${results.length} checks passed`);
}

main().catch((e) => { console.log(`not ok - ${e.stack || e}`); stopAll(); process.exit(1); });
