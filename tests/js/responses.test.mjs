// The Responses API with the openai SDK: a response, a stream (raw events and the SDK's own accumulation),
// a forced function call and its round trip.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { answer, assertCost, model, openai, question, tool, usage } from './gateway.mjs';

const weather = { type: 'function', name: tool.name, parameters: tool.parameters };
const forced = { type: 'function', name: tool.name };

function assertUsage(responseUsage) {
  assert.equal(responseUsage.input_tokens, usage.prompt_tokens);
  assert.equal(responseUsage.output_tokens, usage.completion_tokens);
  assert.equal(responseUsage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  assertCost(responseUsage.cost);
}

test('a response carries one message whose text is output_text, with its usage and cost', async () => {
  const response = await openai().responses.create({ model, input: question });
  assert.equal(response.object, 'response');
  assert.equal(response.status, 'completed');
  assert.equal(response.model, model);
  assert.equal(response.output_text, answer);
  assert.deepEqual(
    response.output.map((item) => [item.type, item.role]),
    [['message', 'assistant']],
  );
  assert.deepEqual(
    response.output[0].content.map((part) => [part.type, part.text]),
    [['output_text', answer]],
  );
  assertUsage(response.usage);
});

test('a stream runs from response.created to response.completed, its deltas joining up', async () => {
  const stream = await openai().responses.create({ model, input: question, stream: true });
  const events = [];
  for await (const event of stream) events.push(event);
  const types = events.map((event) => event.type);
  assert.equal(types[0], 'response.created');
  assert.equal(types.at(-1), 'response.completed');
  for (const expected of [
    'response.output_item.added',
    'response.content_part.added',
    'response.output_text.done',
    'response.output_item.done',
  ]) {
    assert.ok(types.includes(expected), `no ${expected} in ${types}`);
  }
  const numbers = events.map((event) => event.sequence_number);
  assert.deepEqual(numbers, [...numbers].sort((a, b) => a - b), 'sequence numbers out of order');
  const deltas = events.filter((event) => event.type === 'response.output_text.delta');
  assert.ok(deltas.length > 1, 'the answer came in one piece');
  assert.equal(deltas.map((event) => event.delta).join(''), answer);
  assert.equal(events.find((event) => event.type === 'response.output_text.done').text, answer);
  const completed = events.at(-1).response; // as sent: output_text is the SDK's, on what it accumulates
  assert.equal(completed.status, 'completed');
  assert.deepEqual(
    completed.output.flatMap((item) => item.content.map((part) => [part.type, part.text])),
    [['output_text', answer]],
  );
  assertUsage(completed.usage);
});

test("the SDK's responses.stream() accumulates the events into the final response", async () => {
  const stream = openai().responses.stream({ model, input: question });
  let text = '';
  stream.on('response.output_text.delta', (event) => {
    text += event.delta;
  });
  const final = await stream.finalResponse();
  assert.equal(text, answer);
  assert.equal(final.output_text, answer);
  assert.equal(final.status, 'completed');
  assertUsage(final.usage);
});

test('a forced function call comes back as a function_call item; its output gets the answer', async () => {
  const client = openai();
  const first = await client.responses.create({
    model,
    input: question,
    tools: [weather],
    tool_choice: forced,
  });
  const calls = first.output.filter((item) => item.type === 'function_call');
  assert.equal(calls.length, 1);
  const [call] = calls;
  assert.deepEqual([call.call_id, call.name], [tool.call_id, tool.name]);
  assert.deepEqual(JSON.parse(call.arguments), tool.arguments);
  assert.equal(first.output_text, '');

  const second = await client.responses.create({
    model,
    // the SDK's own pattern: the previous output sent back as it came, then the function's output
    input: [
      { role: 'user', content: question },
      ...first.output,
      { type: 'function_call_output', call_id: call.call_id, output: tool.result },
    ],
    tools: [weather],
  });
  assert.equal(second.output_text, tool.answer);
});

test('a streamed function call: its argument deltas join into the arguments of the final item', async () => {
  const stream = openai().responses.stream({ model, input: question, tools: [weather], tool_choice: forced });
  const events = [];
  for await (const event of stream) events.push(event);
  const final = await stream.finalResponse();
  const pieces = events.filter((event) => event.type === 'response.function_call_arguments.delta');
  const done = events.find((event) => event.type === 'response.function_call_arguments.done');
  assert.deepEqual(JSON.parse(pieces.map((event) => event.delta).join('')), tool.arguments);
  assert.deepEqual(JSON.parse(done.arguments), tool.arguments);
  const [call] = final.output.filter((item) => item.type === 'function_call');
  assert.deepEqual([call.call_id, call.name], [tool.call_id, tool.name]);
  assert.deepEqual(JSON.parse(call.arguments), tool.arguments);
  assert.equal(final.status, 'completed');
});
