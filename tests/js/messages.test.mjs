// Anthropic Messages with @anthropic-ai/sdk: a message, messages.stream() and its finalMessage(), a forced
// tool_use and its round trip.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { anthropic, answer, assertCost, model, question, tool, usage } from './gateway.mjs';

const weather = { name: tool.name, input_schema: tool.parameters };
const forced = { type: 'tool', name: tool.name };
const maxTokens = 200;

function assertUsage(messageUsage) {
  assert.equal(messageUsage.input_tokens, usage.prompt_tokens);
  assert.equal(messageUsage.output_tokens, usage.completion_tokens);
  assertCost(messageUsage.cost);
}

test('a message carries one text block with the answer, its usage and cost', async () => {
  const { data: message, response } = await anthropic()
    .messages.create({ model, max_tokens: maxTokens, messages: [{ role: 'user', content: question }] })
    .withResponse();
  assert.ok(response.headers.get('x-request-id'));
  assert.equal(message._request_id, response.headers.get('x-request-id'));
  assert.deepEqual([message.type, message.role, message.model], ['message', 'assistant', model]);
  assert.deepEqual(message.content, [{ type: 'text', text: answer }]);
  assert.equal(message.stop_reason, 'end_turn');
  assertUsage(message.usage);
});

test("messages.stream() yields text deltas, and finalMessage() is the SDK's accumulation", async () => {
  const stream = anthropic().messages.stream({
    model,
    max_tokens: maxTokens,
    messages: [{ role: 'user', content: question }],
  });
  const events = [];
  for await (const event of stream) events.push(event);
  const final = await stream.finalMessage();
  const types = events.map((event) => event.type);
  assert.equal(types[0], 'message_start');
  assert.equal(types.at(-1), 'message_stop');
  assert.deepEqual(
    types.filter((type) => type.startsWith('content_block_') && type !== 'content_block_delta'),
    ['content_block_start', 'content_block_stop'],
  );
  const deltas = events.filter((event) => event.type === 'content_block_delta');
  assert.ok(deltas.length > 1, 'the answer came in one piece');
  assert.equal(deltas.map((event) => event.delta.text).join(''), answer);
  assert.equal(await stream.finalText(), answer);
  assert.deepEqual(
    final.content.map((block) => [block.type, block.text]),
    [['text', answer]],
  );
  assert.equal(final.stop_reason, 'end_turn');
  assert.equal(final.usage.input_tokens, usage.prompt_tokens);
  assert.equal(final.usage.output_tokens, usage.completion_tokens);
  // The cost is on message_delta's usage: the SDK's accumulation copies only the counters it knows from
  // there, so message_start sends no cost (a placeholder 0 would stay in finalMessage()).
  assert.equal(events[0].message.usage.cost, undefined);
  assert.equal(final.usage.cost, undefined);
  const [delta] = events.filter((event) => event.type === 'message_delta');
  assert.equal(delta.delta.stop_reason, 'end_turn');
  assertUsage(delta.usage);
});

test('a forced tool_use comes back with its input, and its tool_result gets the answer', async () => {
  const client = anthropic();
  const first = await client.messages.create({
    model,
    max_tokens: maxTokens,
    messages: [{ role: 'user', content: question }],
    tools: [weather],
    tool_choice: forced,
  });
  assert.equal(first.stop_reason, 'tool_use');
  const uses = first.content.filter((block) => block.type === 'tool_use');
  assert.equal(uses.length, 1);
  const [use] = uses;
  assert.deepEqual([use.id, use.name, use.input], [tool.call_id, tool.name, tool.arguments]);

  const second = await client.messages.create({
    model,
    max_tokens: maxTokens,
    messages: [
      { role: 'user', content: question },
      { role: 'assistant', content: first.content }, // sent back as it came
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: tool.result }] },
    ],
    tools: [weather],
  });
  assert.deepEqual(second.content, [{ type: 'text', text: tool.answer }]);
  assert.equal(second.stop_reason, 'end_turn');
});

test('a streamed tool_use: input_json deltas join into the input of the final message', async () => {
  const stream = anthropic().messages.stream({
    model,
    max_tokens: maxTokens,
    messages: [{ role: 'user', content: question }],
    tools: [weather],
    tool_choice: forced,
  });
  let json = '';
  stream.on('inputJson', (partial) => {
    json += partial;
  });
  const final = await stream.finalMessage();
  assert.deepEqual(JSON.parse(json), tool.arguments);
  assert.equal(final.stop_reason, 'tool_use');
  const [use] = final.content.filter((block) => block.type === 'tool_use');
  assert.deepEqual([use.id, use.name, use.input], [tool.call_id, tool.name, tool.arguments]);
});
