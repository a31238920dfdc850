// realtime-student-guide-token through supabase-js, as the React frontend calls it: the
// student's token flow behind the rollout flag (mint, refresh, flag), and the demo guide
// with the anon key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { anonKey, assertFunctionsError, clearStandin, env, newUser, sql, sqlValue, standinRequests, supabaseFor } from '../lib/world.js';

const FUNCTION = 'realtime-student-guide-token';

// The frontend's console snippet for the rollout bucket (CONTRACT.md section 3).
function bucket(userId) {
  const hash = [...userId].reduce((h, c) => ((h << 5) - h) + c.charCodeAt(0), 0);
  return Math.abs(hash) % 100;
}

function setFlag(enabled, percentage) {
  sql(`UPDATE voice_feature_flags SET enabled = ${enabled}, rollout_percentage = ${percentage} WHERE flag_name = 'voice_webrtc_migration'`);
}

before(() => setFlag(true, 100));
after(() => setFlag(false, 0));

test('an enrolled student mints a tutor token, refreshes it and reads the flag', async () => {
  await clearStandin();
  const student = await newUser();
  const supabase = await supabaseFor(student.jwt);

  const minted = await supabase.functions.invoke(FUNCTION, { body: { persona: 'student-tutor', language: 'fr' } });
  assert.equal(minted.error, null, String(minted.error));
  const token = minted.data;
  assert.equal(token.success, true);
  assert.equal(token.mode, 'realtime');
  assert.equal(token.implementation, 'webrtc');
  assert.equal(token.persona, 'student-tutor');
  assert.equal(token.voice, 'ash');
  assert.equal(token.model, 'gpt-realtime');
  assert.equal(token.enrolled, true);
  assert.equal(token.bucket, bucket(student.id));
  assert.match(token.token, /^ek_/);
  assert.ok(Math.abs(token.expiresAt - (Date.now() / 1000 + 60)) < 10, `expiresAt ${token.expiresAt}`);
  assert.match(token.sessionId, /^[0-9a-f-]{36}$/);

  const sent = await standinRequests('/v1/realtime/client_secrets');
  assert.equal(sent.length, 1);
  assert.equal(sent[0].headers.authorization, `Bearer ${env.openaiKey}`);
  assert.equal(sent[0].json.session.model, 'gpt-realtime');
  assert.match(sent[0].json.session.instructions, /French/);

  const owner = sqlValue(`SELECT user_id FROM realtime_token_sessions WHERE id = '${token.sessionId}'`);
  assert.equal(owner, student.id);

  const refreshed = await supabase.functions.invoke(`${FUNCTION}/refresh`, { body: { sessionId: token.sessionId } });
  assert.equal(refreshed.error, null, String(refreshed.error));
  assert.match(refreshed.data.token, /^ek_/);
  assert.notEqual(refreshed.data.token, token.token);
  assert.equal(refreshed.data.sessionId, token.sessionId);
  assert.equal(sqlValue(`SELECT refresh_count FROM realtime_token_sessions WHERE id = '${token.sessionId}'`), '1');

  const flag = await supabase.functions.invoke(`${FUNCTION}/flag`, { method: 'GET' });
  assert.equal(flag.error, null, String(flag.error));
  assert.deepEqual(
    { ...flag.data },
    {
      flag: 'voice_webrtc_migration',
      enabled: true,
      rollout_percentage: 100,
      bucket: bucket(student.id),
      enrolled: true,
      implementation: 'webrtc',
    },
  );
});

test('another student cannot refresh the session: 403 as FunctionsHttpError', async () => {
  const owner = await newUser();
  const minted = await (await supabaseFor(owner.jwt)).functions.invoke(FUNCTION, { body: { persona: 'student-tutor' } });
  assert.equal(minted.error, null, String(minted.error));
  const intruder = await newUser();
  const result = await (await supabaseFor(intruder.jwt)).functions.invoke(`${FUNCTION}/refresh`, {
    body: { sessionId: minted.data.sessionId },
  });
  await assertFunctionsError(result, 403, 'forbidden');
  assert.equal(sqlValue(`SELECT refresh_count FROM realtime_token_sessions WHERE id = '${minted.data.sessionId}'`), '0');
});

test('a student outside the rollout gets the WebSocket fallback and no token', async () => {
  setFlag(true, 0);
  try {
    await clearStandin();
    const student = await newUser();
    const { data, error } = await (await supabaseFor(student.jwt)).functions.invoke(FUNCTION, {
      body: { persona: 'student-tutor' },
    });
    assert.equal(error, null, String(error));
    assert.deepEqual({ ...data }, {
      success: true, mode: 'fallback', implementation: 'websocket', enrolled: false, bucket: bucket(student.id),
    });
    assert.equal((await standinRequests('/v1/realtime/client_secrets')).length, 0);
  } finally {
    setFlag(true, 100);
  }
});

test('the demo guide works with the anon key alone; the tutor does not', async () => {
  const supabase = await supabaseFor(); // no session: supabase-js sends the anon key
  const guide = await supabase.functions.invoke(FUNCTION, { body: { persona: 'demo-guide', language: 'es' } });
  assert.equal(guide.error, null, String(guide.error));
  assert.equal(guide.data.persona, 'demo-guide');
  assert.equal(guide.data.mode, 'realtime');
  assert.match(guide.data.token, /^ek_/);

  const tutor = await supabase.functions.invoke(FUNCTION, { body: { persona: 'student-tutor' } });
  await assertFunctionsError(tutor, 403, 'forbidden');
});

test('an unknown persona is 400 naming the field and stores no session', async () => {
  const student = await newUser();
  const before = sqlValue(`SELECT count(*) FROM realtime_token_sessions`);
  const result = await (await supabaseFor(student.jwt)).functions.invoke(FUNCTION, { body: { persona: 'pirate' } });
  const body = await assertFunctionsError(result, 400, 'invalid_request');
  assert.match(body.message, /persona/);
  assert.equal(sqlValue(`SELECT count(*) FROM realtime_token_sessions`), before);
});

test('no key, token or secret of this run appears in the app log', async () => {
  const { readFileSync } = await import('node:fs');
  const log = readFileSync(env.appLog, 'utf8');
  assert.match(log, /"function":"realtime-student-guide-token"/);
  for (const secret of [env.openaiKey, env.jwtSecret, await anonKey()]) {
    assert.ok(!log.includes(secret), 'a secret is in the app log');
  }
  assert.ok(!/ek_[A-Za-z0-9]/.test(log), 'an ephemeral token is in the app log');
});
