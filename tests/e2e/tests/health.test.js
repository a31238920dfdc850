// health: the operators' and the SpinKube probes' view, through plain fetch and supabase-js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { functionUrl, supabaseFor } from '../lib/world.js';

test('health answers healthy with the database and the API key, without auth', async () => {
  const response = await fetch(functionUrl('health'));
  assert.equal(response.status, 200);
  assert.ok(response.headers.get('x-request-id'));
  const body = await response.json();
  assert.equal(body.status, 'healthy');
  assert.equal(body.database, true);
  assert.equal(body.apiKey, true);
  assert.equal(body.realtimeAPI, null);
  assert.match(body.version, /^\d+\.\d+\.\d+/);
});

test('health through supabase-js invoke with GET, as the frontend polls it', async () => {
  const supabase = await supabaseFor();
  const { data, error } = await supabase.functions.invoke('health', { method: 'GET' });
  assert.equal(error, null);
  assert.equal(data.status, 'healthy');
});

test('deep health asks the Realtime API through the stand-in', async () => {
  const response = await fetch(functionUrl('health', '?deep=1'));
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.realtimeAPI, true);
});
