// What every function does before its own work, seen from supabase-js and fetch: a bad
// or missing JWT is a 401 the client can read, with CORS headers; preflight needs no
// token; an origin outside allowed_origins is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FunctionsHttpError } from '@supabase/supabase-js';
import { anonKey, env, functionUrl, newUser, pageOrigin, supabaseFor, userJwt } from '../lib/world.js';

const PROTECTED = [
  ['realtime-student-guide-token', '', { persona: 'student-tutor' }],
  ['realtime-voice-demo-relay', '/sessions', { demo_activity_id: '00000000-0000-4000-8000-000000000000' }],
  ['voice-monitoring', '/errors', { error_type: 'x', error_message: 'x', is_retryable: false, implementation_type: 'webrtc' }],
  ['voice-agent-search', '', { query: 'anything' }],
];

for (const [name, path, body] of PROTECTED) {
  test(`${name}: a JWT signed with another secret is a readable 401 invalid_jwt with CORS headers`, async () => {
    const user = await newUser();
    const forged = await userJwt(user.id, { secret: 'not-the-projects-secret-not-the-projects-secret' });
    const result = await (await supabaseFor(forged)).functions.invoke(`${name}${path}`, { body });
    assert.ok(result.error instanceof FunctionsHttpError, String(result.error));
    const response = result.error.context;
    assert.equal(response.status, 401);
    assert.equal(response.headers.get('access-control-allow-origin'), pageOrigin);
    assert.match(response.headers.get('access-control-allow-headers'), /authorization/);
    assert.deepEqual(await response.json(), { code: 401, message: 'Invalid JWT', error: 'invalid_jwt' });
  });
}

test('an expired JWT is 401 invalid_jwt', async () => {
  const user = await newUser();
  const expired = await userJwt(user.id, { expiresIn: Math.floor(Date.now() / 1000) - 3600 });
  const result = await (await supabaseFor(expired)).functions.invoke('voice-agent-search', { body: { query: 'x' } });
  assert.equal(result.error.context.status, 401);
  assert.equal((await result.error.context.json()).error, 'invalid_jwt');
});

test('no Authorization header is 401 missing_authorization', async () => {
  const response = await fetch(functionUrl('realtime-student-guide-token'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', apikey: await anonKey() },
    body: JSON.stringify({ persona: 'demo-guide' }),
  });
  assert.equal(response.status, 401);
  assert.deepEqual(await response.json(), { code: 401, message: 'Missing authorization header', error: 'missing_authorization' });
});

test('preflight from the allowed origin is 200 ok with the CORS headers and needs no token', async () => {
  const response = await fetch(functionUrl('realtime-voice-demo-relay', '/sessions'), {
    method: 'OPTIONS',
    headers: {
      origin: pageOrigin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, x-client-info, apikey, content-type',
    },
  });
  assert.equal(response.status, 200);
  assert.equal(await response.text(), 'ok');
  assert.equal(response.headers.get('access-control-allow-origin'), pageOrigin);
  assert.match(response.headers.get('vary') ?? '', /origin/i);
  assert.equal(response.headers.get('access-control-allow-headers'), 'authorization, x-client-info, apikey, content-type');
  assert.match(response.headers.get('access-control-allow-methods'), /POST/);
});

test('a request from an origin that is not allowed is 403 origin_not_allowed', async () => {
  const user = await newUser();
  const response = await fetch(functionUrl('voice-agent-search'), {
    method: 'POST',
    headers: { origin: 'https://evil.example', authorization: `Bearer ${user.jwt}`, 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'x' }),
  });
  assert.equal(response.status, 403);
  assert.equal((await response.json()).error, 'origin_not_allowed');
  assert.notEqual(response.headers.get('access-control-allow-origin'), 'https://evil.example');
});

test('every response carries x-request-id, its own when the caller sends one', async () => {
  const response = await fetch(functionUrl('health'), { headers: { 'x-request-id': 'e2e-request-42' } });
  assert.equal(response.headers.get('x-request-id'), 'e2e-request-42');
  assert.ok(env.baseUrl);
});
