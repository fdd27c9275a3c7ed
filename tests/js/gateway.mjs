// What tests/gateway/test_js_sdks.py tells the JS tests: where the gateway is, a funded key, and the model
// it put in the catalog in front of a fake upstream, with what that fake answers (text, tool call, tokens).
import assert from 'node:assert/strict';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through tests/gateway/test_js_sdks.py`);
  return value;
}

export const gateway = required('GATEWAY_BASE_URL');
export const apiKey = required('GATEWAY_API_KEY');
export const model = required('GATEWAY_MODEL'); // routed to the fake upstream
export const catalogSlugs = JSON.parse(required('CATALOG_SLUGS')); // every active model's slug
export const sandbox = JSON.parse(required('SANDBOX_MODEL')); // {slug, name, owned_by}: a shipped model
export const answer = required('FAKE_ANSWER'); // the fake's text answer
// {name, parameters, call_id, arguments, result, answer}: the fake's call, and its answer to the result
export const tool = JSON.parse(required('FAKE_TOOL'));
export const usage = JSON.parse(required('FAKE_USAGE')); // {prompt_tokens, completion_tokens, cost_usd}

export const question = 'What is the weather in Paris?';

// maxRetries 0: one SDK call is one request, so one generation, which the pytest side counts.
export function openai(key = apiKey) {
  return new OpenAI({ baseURL: `${gateway}/api/v1`, apiKey: key, maxRetries: 0 });
}

// The Anthropic SDK adds /v1 itself.
export function anthropic(key = apiKey) {
  return new Anthropic({ baseURL: `${gateway}/api`, apiKey: key, maxRetries: 0 });
}

// The gateway's cost in USD, as a float: equal to the fake's figures at the test model's prices.
export function assertCost(cost) {
  assert.equal(typeof cost, 'number');
  assert.ok(Math.abs(cost - usage.cost_usd) < 1e-12, `cost ${cost} is not ${usage.cost_usd}`);
}
