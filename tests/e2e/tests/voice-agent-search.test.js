// voice-agent-search as the voice agent's web_search tool calls it through supabase-js:
// an answer with citations from the Responses API, served from the cache on a repeat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { assertFunctionsError, clearStandin, env, newUser, standinMode, standinRequests, supabaseFor } from '../lib/world.js';

const FUNCTION = 'voice-agent-search';

test('a search is answered with citations, and the same query again comes from the cache', async () => {
  await clearStandin();
  const student = await newUser();
  const client = await supabaseFor(student.jwt);
  const query = `How tall is the Eiffel Tower? ${randomUUID()}`;

  const first = await client.functions.invoke(FUNCTION, { body: { query, locale: 'en', max_citations: 3 } });
  assert.equal(first.error, null, String(first.error));
  assert.equal(typeof first.data.answer, 'string');
  assert.ok(first.data.answer.length > 0);
  assert.ok(Array.isArray(first.data.citations));
  assert.ok(first.data.citations.length <= 3);
  for (const citation of first.data.citations) {
    assert.match(citation.url, /^https?:\/\//);
    assert.equal(typeof citation.title, 'string');
  }
  assert.equal(first.data.cached, false);
  assert.equal(typeof first.data.took_ms, 'number');

  const sent = await standinRequests('/v1/responses');
  assert.equal(sent.length, 1);
  assert.equal(sent[0].headers.authorization, `Bearer ${env.openaiKey}`);
  assert.deepEqual(sent[0].json.tools, [{ type: 'web_search' }]);

  // The same query, differently spaced and cased: the normalised key hits the cache.
  const again = await client.functions.invoke(FUNCTION, { body: { query: `  ${query.toUpperCase()}  `, locale: 'en', max_citations: 3 } });
  assert.equal(again.error, null, String(again.error));
  assert.equal(again.data.cached, true);
  assert.equal(again.data.answer, first.data.answer);
  assert.equal((await standinRequests('/v1/responses')).length, 1, 'no second upstream call');
});

test('an upstream 429 for a query never answered before is 503 with Retry-After', async () => {
  const student = await newUser();
  const client = await supabaseFor(student.jwt);
  await standinMode('responses', '429');
  try {
    const result = await client.functions.invoke(FUNCTION, { body: { query: `never asked ${randomUUID()}` } });
    await assertFunctionsError(result, 503);
    assert.ok(result.error.context.headers.get('retry-after'), 'Retry-After');
  } finally {
    await standinMode('responses', 'normal');
  }
});

test('an empty query is 400 naming the field', async () => {
  const student = await newUser();
  const result = await (await supabaseFor(student.jwt)).functions.invoke(FUNCTION, { body: { query: '   ' } });
  const body = await assertFunctionsError(result, 400, 'invalid_request');
  assert.match(body.message, /query/);
});
