// Legacy text completions and embeddings with the openai SDK: completions.create whole and streamed (the
// fake's text and usage), embeddings.create on the shipped offline embedding model (the SDK asks for base64
// and decodes it itself: the same numbers as encoding_format float).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { answer, assertCost, model, openai, usage } from './gateway.mjs';

const prompt = 'The weather in Paris is';
const embedModel = 'hyperinfer/sandbox-embed';

test('a text completion carries the answer, its usage and its cost', async () => {
  const { data: completion, response } = await openai()
    .completions.create({ model, prompt, max_tokens: 50 })
    .withResponse();
  assert.equal(completion.id, `cmpl-${response.headers.get('x-request-id')}`);
  assert.equal(completion.object, 'text_completion');
  assert.deepEqual(
    completion.choices.map((choice) => [choice.index, choice.text, choice.finish_reason]),
    [[0, answer, 'stop']],
  );
  assert.equal(completion.usage.prompt_tokens, usage.prompt_tokens);
  assert.equal(completion.usage.completion_tokens, usage.completion_tokens);
  assertCost(completion.usage.cost);
});

test('a streamed text completion comes in pieces, then a chunk with the usage', async () => {
  const stream = await openai().completions.create({ model, prompt, max_tokens: 50, stream: true });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const texts = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.text)).filter(Boolean);
  assert.ok(texts.length > 1, 'the answer came in one piece');
  assert.equal(texts.join(''), answer);
  const finishes = chunks.flatMap((chunk) => chunk.choices.map((c) => c.finish_reason)).filter(Boolean);
  assert.deepEqual(finishes, ['stop']);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, usage.completion_tokens);
  assertCost(last.usage.cost);
});

function dot(a, b) {
  return a.reduce((sum, value, index) => sum + value * b[index], 0);
}

test('embeddings: unit vectors in input order, base64 decoded by the SDK equal to floats', async () => {
  const input = ['The cat sat on the mat', 'A cat sat on a mat', 'Quarterly revenue grew'];
  const decoded = await openai().embeddings.create({ model: embedModel, input });
  const floats = await openai().embeddings.create({ model: embedModel, input, encoding_format: 'float' });
  assert.deepEqual(decoded.data.map((item) => item.index), [0, 1, 2]);
  assert.equal(decoded.model, embedModel);
  for (const [index, item] of decoded.data.entries()) {
    assert.equal(item.embedding.length, 256);
    assert.ok(Math.abs(dot(item.embedding, item.embedding) - 1) < 1e-5);
    const exact = floats.data[index].embedding;
    assert.ok(item.embedding.every((value, i) => Math.abs(value - exact[i]) < 1e-6), 'float32 round trip');
  }
  const [cat, alsoCat, revenue] = decoded.data.map((item) => item.embedding);
  assert.ok(dot(cat, alsoCat) > Math.abs(dot(cat, revenue)));
  assert.equal(decoded.usage.prompt_tokens, 6 + 6 + 3); // the sandbox counts a token a word
});

test('an embedding model is refused by chat, and a chat model by embeddings, naming the model', async () => {
  await assert.rejects(
    openai().chat.completions.create({ model: embedModel, messages: [{ role: 'user', content: 'hi' }] }),
    (error) => error.status === 400 && error.param === 'model',
  );
  await assert.rejects(
    openai().embeddings.create({ model, input: 'hi' }),
    (error) => error.status === 400 && error.param === 'model',
  );
});
