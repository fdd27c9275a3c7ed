// Chat completions with the openai SDK: a completion, a stream, a forced tool call and its round trip.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { answer, assertCost, model, openai, question, tool, usage } from './gateway.mjs';

const weather = { type: 'function', function: { name: tool.name, parameters: tool.parameters } };
const forced = { type: 'function', function: { name: tool.name } };

test('a completion carries the answer, its usage and its cost, and the request id names it', async () => {
  const { data: completion, response } = await openai()
    .chat.completions.create({ model, messages: [{ role: 'user', content: question }] })
    .withResponse();
  assert.equal(completion.id, `gen-${response.headers.get('x-request-id')}`);
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.model, model);
  assert.equal(completion.choices.length, 1);
  const [choice] = completion.choices;
  assert.deepEqual(
    [choice.message.role, choice.message.content, choice.finish_reason],
    ['assistant', answer, 'stop'],
  );
  assert.equal(completion.usage.prompt_tokens, usage.prompt_tokens);
  assert.equal(completion.usage.completion_tokens, usage.completion_tokens);
  assert.equal(completion.usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  assertCost(completion.usage.cost);
});

test('a stream yields the answer in pieces, one finish reason, then a chunk with the usage', async () => {
  const stream = await openai().chat.completions.create({
    model,
    messages: [{ role: 'user', content: question }],
    stream: true,
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const choices = chunks.flatMap((chunk) => chunk.choices);
  assert.equal(choices[0].delta.role, 'assistant');
  assert.ok(choices.filter((c) => c.delta.content).length > 1, 'the answer came in one piece');
  assert.equal(choices.map((c) => c.delta.content ?? '').join(''), answer);
  assert.deepEqual(choices.map((c) => c.finish_reason).filter(Boolean), ['stop']);
  assert.ok(chunks.every((chunk) => chunk.object === 'chat.completion.chunk' && chunk.id === chunks[0].id));
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.prompt_tokens, usage.prompt_tokens);
  assert.equal(last.usage.completion_tokens, usage.completion_tokens);
  assertCost(last.usage.cost);
});

test('a forced tool call comes back with JSON arguments, and its result gets the answer', async () => {
  const client = openai();
  const first = await client.chat.completions.create({
    model,
    messages: [{ role: 'user', content: question }],
    tools: [weather],
    tool_choice: forced,
  });
  const [choice] = first.choices;
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.tool_calls.length, 1);
  const [call] = choice.message.tool_calls;
  assert.deepEqual([call.id, call.type, call.function.name], [tool.call_id, 'function', tool.name]);
  assert.deepEqual(JSON.parse(call.function.arguments), tool.arguments);

  const second = await client.chat.completions.create({
    model,
    messages: [
      { role: 'user', content: question },
      choice.message, // the SDK's own pattern: the assistant message sent back as it came
      { role: 'tool', tool_call_id: call.id, content: tool.result },
    ],
    tools: [weather],
  });
  assert.equal(second.choices[0].message.content, tool.answer);
  assert.equal(second.choices[0].finish_reason, 'stop');
});

test('a streamed tool call joins into the call, with finish reason tool_calls', async () => {
  const stream = await openai().chat.completions.create({
    model,
    messages: [{ role: 'user', content: question }],
    tools: [weather],
    tool_choice: forced,
    stream: true,
  });
  const calls = new Map();
  const finishes = [];
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      if (choice.finish_reason) finishes.push(choice.finish_reason);
      for (const piece of choice.delta.tool_calls ?? []) {
        const call = calls.get(piece.index) ?? { id: '', name: '', arguments: '' };
        call.id += piece.id ?? '';
        call.name += piece.function?.name ?? '';
        call.arguments += piece.function?.arguments ?? '';
        calls.set(piece.index, call);
      }
    }
  }
  assert.deepEqual(finishes, ['tool_calls']);
  assert.deepEqual([...calls.keys()], [0]);
  const call = calls.get(0);
  assert.deepEqual([call.id, call.name], [tool.call_id, tool.name]);
  assert.deepEqual(JSON.parse(call.arguments), tool.arguments);
});
