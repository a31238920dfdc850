// What every end-to-end test shares: the app's address and secrets (from scripts/e2e.sh),
// Supabase-style JWTs minted with jose, users in auth.users, SQL through psql, the OpenAI
// stand-in's control API, and supabase-js clients pointed at the app.

import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { createClient, FunctionsHttpError } from '@supabase/supabase-js';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the end-to-end tests with scripts/e2e.sh (make test-e2e)`);
  }
  return value;
}

/** The run's configuration, as scripts/e2e.sh started it. */
export const env = {
  baseUrl: required('E2E_BASE_URL'),
  dbUrl: required('E2E_DB_URL'),
  jwtSecret: required('E2E_JWT_SECRET'),
  webhookSecretNew: required('E2E_WEBHOOK_SECRET_NEW'),
  webhookSecretOld: required('E2E_WEBHOOK_SECRET_OLD'),
  openaiKey: required('E2E_OPENAI_KEY'),
  standinUrl: required('E2E_STANDIN_URL'),
  pagePort: Number(required('E2E_PAGE_PORT')),
  appLog: required('E2E_APP_LOG'),
  chromium: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
};

/** The browser origin the app allows (allowed_origins). */
export const pageOrigin = `http://127.0.0.1:${env.pagePort}`;

/** The URL of a function route. */
export function functionUrl(name, path = '') {
  return `${env.baseUrl}/functions/v1/${name}${path}`;
}

const secretKey = () => new TextEncoder().encode(env.jwtSecret);

/** A JWT as Supabase Auth issues it to a signed-in user (HS256, the project's secret). */
export async function userJwt(userId, { appRole, isAnonymous = false, expiresIn = '1h', secret } = {}) {
  return new SignJWT({
    role: 'authenticated',
    aud: 'authenticated',
    email: isAnonymous ? '' : `${userId}@school.example`,
    is_anonymous: isAnonymous,
    session_id: randomUUID(),
    app_metadata: { provider: isAnonymous ? 'anonymous' : 'email', ...(appRole ? { role: appRole } : {}) },
    user_metadata: {},
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(userId)
    .setIssuer('supabase')
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(secret ? new TextEncoder().encode(secret) : secretKey());
}

/** The project's anon key (role anon, no subject), as the frontend ships it. */
export async function anonKey() {
  return new SignJWT({ role: 'anon' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer('supabase')
    .setIssuedAt()
    .setExpirationTime('10y')
    .sign(secretKey());
}

/** The service role key. */
export async function serviceRoleKey() {
  return new SignJWT({ role: 'service_role' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer('supabase')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(secretKey());
}

/** Runs SQL as the superuser and returns psql's unaligned rows (fields split on '|'). */
export function sql(statement) {
  const out = execFileSync('psql', [env.dbUrl, '--no-psqlrc', '-qtA', '-v', 'ON_ERROR_STOP=1', '-c', statement], {
    encoding: 'utf8',
  });
  return out
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split('|'));
}

/** One value of a one-row, one-column query. */
export function sqlValue(statement) {
  const rows = sql(statement);
  assert.equal(rows.length, 1, `one row expected from: ${statement}`);
  return rows[0][0];
}

/** A new user in auth.users (as Supabase Auth would have them) and their JWT. */
export async function newUser({ appRole, isAnonymous = false } = {}) {
  const id = randomUUID();
  const meta = JSON.stringify(appRole ? { role: appRole } : {});
  sql(
    `INSERT INTO auth.users (id, email, raw_app_meta_data, is_anonymous) ` +
      `VALUES ('${id}', '${id}@school.example', '${meta}'::jsonb, ${isAnonymous})`,
  );
  return { id, jwt: await userJwt(id, { appRole, isAnonymous }) };
}

/**
 * A supabase-js client as the React frontend makes it: the app's base URL (supabase-js
 * calls `${url}/functions/v1/<name>`), the anon key, and the signed-in user's access token.
 * It sends the page's `Origin`, as the browser does on every cross-origin call, so the
 * CORS answers are the ones the frontend gets (the browser test proves them for real).
 */
export async function supabaseFor(accessToken) {
  const key = await anonKey();
  const options = {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { headers: { Origin: pageOrigin } },
  };
  if (accessToken) {
    options.accessToken = async () => accessToken;
  }
  return createClient(env.baseUrl, key, options);
}

/**
 * Asserts that a supabase-js `invoke` failed with FunctionsHttpError and that the
 * response it carries is the contract's error: status, `{code, message, error}`, CORS.
 * `errorCode` undefined checks only that `error` is present. Returns the response body.
 */
export async function assertFunctionsError(result, status, errorCode) {
  assert.equal(result.data, null);
  assert.ok(result.error instanceof FunctionsHttpError, `FunctionsHttpError expected, got ${result.error}`);
  const response = result.error.context;
  assert.equal(response.status, status);
  assert.equal(response.headers.get('access-control-allow-origin'), pageOrigin, 'CORS headers on the error');
  assert.ok(response.headers.get('x-request-id'), 'x-request-id on the error');
  const body = await response.json();
  assert.equal(body.code, status);
  if (errorCode === undefined) {
    assert.equal(typeof body.error, 'string');
  } else {
    assert.equal(body.error, errorCode);
  }
  assert.equal(typeof body.message, 'string');
  return body;
}

/** The OpenAI stand-in's record of requests to `path`. */
export async function standinRequests(path) {
  const response = await fetch(`${env.standinUrl}/__standin/requests?path=${encodeURIComponent(path)}`);
  assert.equal(response.status, 200);
  return response.json();
}

/** Sets how the stand-in answers an endpoint (`normal`, `429`, `500`, `silent`, …). */
export async function standinMode(endpoint, mode) {
  const response = await fetch(`${env.standinUrl}/__standin/mode`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ endpoint, mode }),
  });
  assert.equal(response.status, 200, await response.text());
}

/** Forgets the stand-in's recorded requests. */
export async function clearStandin() {
  await fetch(`${env.standinUrl}/__standin/requests`, { method: 'DELETE' });
}
