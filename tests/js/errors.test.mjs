// Errors reach each SDK as its own error classes, with the gateway's envelope and taxonomy code.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import { anthropic, model, openai, question } from './gateway.mjs';

const messages = [{ role: 'user', content: question }];

test('a bad key is an AuthenticationError (401) in every format', async () => {
  const client = openai('hi-wrong');
  for (const call of [
    () => client.chat.completions.create({ model, messages }),
    () => client.chat.completions.create({ model, messages, stream: true }),
    () => client.responses.create({ model, input: question }),
  ]) {
    await assert.rejects(call(), (error) => {
      assert.ok(error instanceof OpenAI.AuthenticationError, `${error}`);
      assert.equal(error.status, 401);
      assert.equal(error.code, 'invalid_api_key');
      assert.match(error.requestID ?? '', /^[0-9a-f]{32}$/);
      assert.equal(error.error.request_id, error.requestID);
      return true;
    });
  }
  await assert.rejects(
    anthropic('hi-wrong').messages.create({ model, max_tokens: 50, messages }),
    (error) => {
      assert.ok(error instanceof Anthropic.AuthenticationError, `${error}`);
      assert.equal(error.status, 401);
      assert.equal(error.error.type, 'error');
      assert.equal(error.error.error.type, 'authentication_error');
      assert.equal(error.error.error.code, 'invalid_api_key');
      // The gateway's id is in the body, X-Request-Id and Anthropic's own `request-id` (the SDK's requestID).
      assert.match(error.error.request_id, /^[0-9a-f]{32}$/);
      assert.equal(error.headers.get('x-request-id'), error.error.request_id);
      assert.equal(error.requestID, error.error.request_id);
      return true;
    },
  );
});

test('an unknown model is a NotFoundError naming the model parameter', async () => {
  const client = openai();
  for (const call of [
    () => client.chat.completions.create({ model: 'nope/nope', messages }),
    () => client.responses.create({ model: 'nope/nope', input: question }),
  ]) {
    await assert.rejects(call(), (error) => {
      assert.ok(error instanceof OpenAI.NotFoundError, `${error}`);
      assert.equal(error.status, 404);
      assert.equal(error.code, 'invalid_request');
      assert.equal(error.param, 'model');
      return true;
    });
  }
  await assert.rejects(
    anthropic().messages.create({ model: 'nope/nope', max_tokens: 50, messages }),
    (error) => {
      assert.ok(error instanceof Anthropic.NotFoundError, `${error}`);
      assert.equal(error.status, 404);
      assert.equal(error.error.error.code, 'invalid_request');
      return true;
    },
  );
});

test('a malformed request is a BadRequestError naming the field', async () => {
  await assert.rejects(
    openai().chat.completions.create({ model, messages: [{ role: 'robot', content: 'x' }] }),
    (error) => {
      assert.ok(error instanceof OpenAI.BadRequestError, `${error}`);
      assert.equal(error.param, 'messages[0].role');
      return true;
    },
  );
  await assert.rejects(
    anthropic().messages.create({ model, max_tokens: 50, messages: [{ role: 'robot', content: 'x' }] }),
    (error) => {
      assert.ok(error instanceof Anthropic.BadRequestError, `${error}`);
      assert.equal(error.error.error.type, 'invalid_request_error');
      return true;
    },
  );
});
