// realtime-voice-demo-relay's full flow as the demo frontend runs it: list the demo
// activities with the anon key, create a session as a (possibly anonymous) signed-in
// user, relay the browser's SDP offer with fetch and application/sdp, log interactions,
// end the session; rows land in the demo_* tables only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertFunctionsError, clearStandin, env, functionUrl, newUser, sql, sqlValue, standinRequests, supabaseFor } from '../lib/world.js';

const FUNCTION = 'realtime-voice-demo-relay';

// A browser's offer, trimmed: one audio section and the data channel.
const OFFER = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'a=msid-semantic: WMS',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:e2eU',
  'a=ice-pwd:e2e-ice-password-never-logged',
  'a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF',
  'a=setup:actpass',
  'a=mid:0',
  'a=sendrecv',
  'a=rtpmap:111 opus/48000/2',
  'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
  'c=IN IP4 0.0.0.0',
  'a=mid:1',
  'a=sctp-port:5000',
  '',
].join('\r\n');

test('the demo flow: list, create, relay SDP, log interactions, end', async () => {
  await clearStandin();
  const anonymous = await supabaseFor();
  const listed = await anonymous.functions.invoke(`${FUNCTION}/activities?type=readflow`, { method: 'GET' });
  assert.equal(listed.error, null, String(listed.error));
  const activities = listed.data.activities;
  assert.ok(activities.length >= 1, 'the seed has readflow activities');
  assert.ok(activities.every((a) => a.demo_type === 'readflow' && a.is_published === true));
  const activity = activities[0];

  const one = await anonymous.functions.invoke(`${FUNCTION}/activities/${activity.id}`, { method: 'GET' });
  assert.equal(one.error, null, String(one.error));
  assert.equal(one.data.id, activity.id);

  // An anonymous sign-in, as the demo page does before starting.
  const visitor = await newUser({ isAnonymous: true });
  const supabase = await supabaseFor(visitor.jwt);
  const created = await supabase.functions.invoke(`${FUNCTION}/sessions`, { body: { demo_activity_id: activity.id } });
  assert.equal(created.error, null, String(created.error));
  const sessionId = created.data.session_id;
  assert.equal(created.data.activity.id, activity.id);
  const config = created.data.session_config;
  assert.equal(config.audio.output.voice, 'ash');
  assert.ok(config.audio.input.transcription, 'input transcription is on');
  assert.ok(Array.isArray(config.tools) && config.tools.length > 0, 'the demo type has tools');
  assert.equal(sqlValue(`SELECT student_id FROM demo_voice_sessions WHERE id = '${sessionId}'`), visitor.id);

  // The SDP exchange: plain fetch, as the browser's RTCPeerConnection code does it.
  const answer = await fetch(functionUrl(FUNCTION, `/sessions/${sessionId}/sdp`), {
    method: 'POST',
    headers: { authorization: `Bearer ${visitor.jwt}`, 'content-type': 'application/sdp' },
    body: OFFER,
  });
  assert.equal(answer.status, 201, await answer.clone().text());
  assert.match(answer.headers.get('content-type'), /^application\/sdp/);
  const sdp = await answer.text();
  assert.ok(sdp.startsWith('v=0\r\n'), sdp);
  assert.match(sdp, /m=audio/);
  const calls = await standinRequests('/v1/realtime/calls');
  assert.equal(calls.length, 1);
  assert.equal(calls[0].headers.authorization, `Bearer ${env.openaiKey}`);
  const callId = sqlValue(`SELECT openai_call_id FROM demo_voice_sessions WHERE id = '${sessionId}'`);
  assert.match(callId, /^rtc_/);

  const logged = await supabase.functions.invoke(`${FUNCTION}/sessions/${sessionId}/interactions`, {
    body: {
      items: [
        { interaction_type: 'assistant_transcript', transcript: 'Please read the passage aloud.' },
        {
          interaction_type: 'user_transcript',
          transcript: 'otters hold hands',
          words: [
            { word: 'otters', start_ms: 0, end_ms: 310, confidence: 0.97 },
            { word: 'hold', start_ms: 310, end_ms: 520 },
          ],
        },
      ],
    },
  });
  assert.equal(logged.error, null, String(logged.error));
  assert.deepEqual({ ...logged.data }, { inserted: 2 });
  assert.equal(sqlValue(`SELECT count(*) FROM demo_interactions WHERE demo_session_id = '${sessionId}'`), '2');

  const ended = await supabase.functions.invoke(`${FUNCTION}/sessions/${sessionId}/end`, {
    body: { telemetry: { connection_ms: 380 } },
  });
  assert.equal(ended.error, null, String(ended.error));
  assert.equal(ended.data.status, 'ended');
  const [[status, telemetry, hasEnded]] = sql(
    `SELECT status, telemetry::text, ended_at IS NOT NULL FROM demo_voice_sessions WHERE id = '${sessionId}'`,
  );
  assert.equal(status, 'ended');
  assert.deepEqual(JSON.parse(telemetry), { connection_ms: 380 });
  assert.equal(hasEnded, 't');

  const again = await supabase.functions.invoke(`${FUNCTION}/sessions/${sessionId}/end`, { body: {} });
  const conflict = await assertFunctionsError(again, 409);
  assert.match(conflict.error, /^[a-z_]+$/);
});

test('another user cannot relay an offer for the session: 403', async () => {
  const owner = await newUser();
  const supabase = await supabaseFor(owner.jwt);
  const listed = await supabase.functions.invoke(`${FUNCTION}/activities`, { method: 'GET' });
  assert.equal(listed.error, null, String(listed.error));
  const created = await supabase.functions.invoke(`${FUNCTION}/sessions`, {
    body: { demo_activity_id: listed.data.activities[0].id },
  });
  assert.equal(created.error, null, String(created.error));
  const intruder = await newUser();
  const response = await fetch(functionUrl(FUNCTION, `/sessions/${created.data.session_id}/sdp`), {
    method: 'POST',
    headers: { authorization: `Bearer ${intruder.jwt}`, 'content-type': 'application/sdp' },
    body: OFFER,
  });
  assert.equal(response.status, 403);
  const body = await response.json();
  assert.deepEqual([body.code, body.error], [403, 'forbidden']);
  assert.equal(sqlValue(`SELECT openai_call_id IS NULL FROM demo_voice_sessions WHERE id = '${created.data.session_id}'`), 't');
});

test('creating a session with the anon key alone is 401 or 403 and stores nothing', async () => {
  const anonymous = await supabaseFor();
  const before = sqlValue('SELECT count(*) FROM demo_voice_sessions');
  const listed = await anonymous.functions.invoke(`${FUNCTION}/activities`, { method: 'GET' });
  const result = await anonymous.functions.invoke(`${FUNCTION}/sessions`, {
    body: { demo_activity_id: listed.data.activities[0].id },
  });
  assert.ok(result.error, 'refused');
  assert.ok([401, 403].includes(result.error.context.status), `status ${result.error.context.status}`);
  assert.equal(sqlValue('SELECT count(*) FROM demo_voice_sessions'), before);
});
