// client.models.list() and models.retrieve(slug) in both SDKs: the catalog's slugs are the ids.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

import { anthropic, catalogSlugs, model, openai, sandbox } from './gateway.mjs';

const sorted = (ids) => [...ids].sort();

test('the OpenAI SDK lists every catalog model by its slug', async () => {
  const ids = [];
  for await (const listed of openai('not-needed-for-the-catalog').models.list()) {
    assert.equal(listed.object, 'model');
    ids.push(listed.id);
  }
  assert.deepEqual(sorted(ids), sorted(catalogSlugs));
  assert.ok(ids.includes(model) && ids.includes(sandbox.slug));
});

test('the OpenAI SDK retrieves a model by its slug, slash and all', async () => {
  const retrieved = await openai('not-needed-for-the-catalog').models.retrieve(sandbox.slug);
  assert.equal(retrieved.id, sandbox.slug);
  assert.equal(retrieved.object, 'model');
  assert.equal(retrieved.owned_by, sandbox.owned_by);
  assert.ok(Number.isInteger(retrieved.created) && retrieved.created > 0);
  await assert.rejects(openai().models.retrieve('nobody/nothing'), OpenAI.NotFoundError);
});

test('the Anthropic SDK lists every catalog model by its slug, across its pages', async () => {
  const ids = [];
  for await (const listed of anthropic('not-needed-for-the-catalog').models.list()) {
    assert.equal(listed.type, 'model');
    ids.push(listed.id);
  }
  assert.deepEqual(sorted(ids), sorted(catalogSlugs));
});

test('the Anthropic SDK retrieves a model by its slug', async () => {
  const retrieved = await anthropic('not-needed-for-the-catalog').models.retrieve(sandbox.slug);
  assert.equal(retrieved.id, sandbox.slug);
  assert.equal(retrieved.type, 'model');
  assert.equal(retrieved.display_name, sandbox.name);
  assert.ok(new Date(retrieved.created_at).getUTCFullYear() >= 2025);
  await assert.rejects(anthropic().models.retrieve('nobody/nothing'), Anthropic.NotFoundError);
});
