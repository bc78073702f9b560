// Conformance suite: drives the duoprov Duo emulator with Duo's official Node client
// (@duosecurity/duo_api, `Client.apiCall`), for one signature version per run, and checks that
// every answer is what Duo's documentation says. The Node twin of ../python/conformance.py, run
// by the Rust integration test `node_conformance`, which starts the emulators and passes their
// coordinates in the environment:
//
//   DUO_HOST, DUO_PORT          main emulator (rate limits off)
//   DUO_RL_PORT                 second emulator with tight rate limits (same integrations)
//   DUO_IKEY, DUO_SKEY          integration with every grant
//   DUO_RO_IKEY, DUO_RO_SKEY    integration with "Grant read resource" only
//   DUO_NG_IKEY, DUO_NG_SKEY    integration with no grant
//   DUO_SIG_VERSION             5 or 2 (the Node client's two: v5, and v2 with HMAC-SHA512)
//   DUOPROV_NODE_CLIENT_DIR     the folder whose node_modules holds @duosecurity/duo_api
//
// The Node client has no plain-HTTP option (the Python client's `ca_certs="HTTP"`): it always
// calls `https.request` with Duo's pinned CAs. This script replaces `https.request` with
// `http.request` to the emulator's port, keeping everything else — the client's date, headers,
// parameter encoding, signature and 429 backoff — and records each answer's HTTP status, which
// the client does not hand back.
//
// Prints one line per check and exits non-zero if any failed. Secrets come from the environment
// only and are never printed.

'use strict'

const http = require('http')
const https = require('https')
const path = require('path')

const duoApi = require(path.join(process.env.DUOPROV_NODE_CLIENT_DIR, 'node_modules', '@duosecurity', 'duo_api'))

const HOST = process.env.DUO_HOST
const PORT = Number(process.env.DUO_PORT)
const RL_PORT = Number(process.env.DUO_RL_PORT)
const SIG = Number(process.env.DUO_SIG_VERSION)
const TAG = 'node-v' + SIG

// The transport: `host:port` from the client's host, plain HTTP, each answer's status recorded.
let lastStatus = null
let lastContentType = null
https.request = function (options, callback) {
  const [hostname, port] = options.host.split(':')
  const plain = Object.assign({}, options, { host: undefined, hostname, port: Number(port), ca: undefined })
  return http.request(plain, function (res) {
    lastStatus = res.statusCode
    lastContentType = res.headers['content-type']
    callback(res)
  })
}

function client (ikeyVar = 'DUO_IKEY', skeyVar = 'DUO_SKEY', port = PORT, skey = null) {
  const sig = SIG === 5 ? duoApi.SIGNATURE_VERSION_5 : duoApi.SIGNATURE_VERSION_2
  return new duoApi.Client(process.env[ikeyVar], skey !== null ? skey : process.env[skeyVar], HOST + ':' + port, sig)
}

const A = client()

// One call: {status, body}. The body must be JSON (the emulator answers JSON for every status).
function call (c, method, p, params = {}) {
  return new Promise((resolve, reject) => {
    c.apiCall(method, p, params, function (data) {
      try {
        const body = JSON.parse(data)
        if (body.stat === 'ERROR') reject(new Error('transport: ' + body.message))
        else resolve({ status: lastStatus, contentType: lastContentType, body })
      } catch (e) {
        reject(new Error(method + ' ' + p + ': not JSON (' + e.message + '): ' + String(data).slice(0, 200)))
      }
    })
  })
}

function assert (cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + (typeof msg === 'string' ? msg : JSON.stringify(msg)))
}

function eq (a, b, msg) {
  const ja = JSON.stringify(a)
  const jb = JSON.stringify(b)
  if (ja !== jb) throw new Error((msg ? msg + ': ' : '') + ja + ' !== ' + jb)
}

// A successful call's `response` (and metadata): status 200, `stat` OK, JSON content type.
async function ok (method, p, params = {}, c = A) {
  const r = await call(c, method, p, params)
  assert(r.status === 200 && r.body.stat === 'OK', method + ' ' + p + ' answered ' + r.status + ' ' + JSON.stringify(r.body))
  eq(r.contentType, 'application/json', 'content type')
  return r.body.response
}

async function okWithMetadata (method, p, params = {}) {
  const r = await call(A, method, p, params)
  assert(r.status === 200 && r.body.stat === 'OK', method + ' ' + p + ' answered ' + r.status + ' ' + JSON.stringify(r.body))
  return r.body
}

async function expectError (method, p, params, status, code, detail, c = A) {
  const r = await call(c, method, p, params)
  eq(r.status, status, method + ' ' + p + ' status (' + JSON.stringify(r.body) + ')')
  eq(r.body.stat, 'FAIL', 'stat')
  eq(r.body.code, code, 'code')
  eq(String(r.body.code).slice(0, 3), String(status), 'code prefix')
  assert(typeof r.body.message === 'string' && r.body.message.length > 0, r.body)
  if (detail !== undefined) eq(r.body.message_detail, detail, 'message_detail')
  return r.body
}

function uname (s) {
  return TAG + '-' + s
}

function isDuoId (s, prefix) {
  return typeof s === 'string' && s.length === 20 && s.startsWith(prefix) && /^[0-9A-Z]+$/.test(s)
}

const USER_KEYS = ['alias1', 'alias2', 'alias3', 'alias4', 'aliases', 'created', 'email', 'firstname', 'groups',
  'is_enrolled', 'last_directory_sync', 'last_login', 'lastname', 'notes', 'phones', 'realname',
  'status', 'tokens', 'u2ftokens', 'user_id', 'username', 'webauthncredentials']
const GROUP_KEYS = ['desc', 'group_id', 'mobile_otp_enabled', 'name', 'push_enabled', 'sms_enabled', 'status', 'voice_enabled']

// Lists every page with the given limit, as an official client's iterator would.
async function allPages (p, limit, params = {}) {
  const out = []
  let offset = 0
  for (;;) {
    const body = await okWithMetadata('GET', p, Object.assign({}, params, { limit: String(limit), offset: String(offset) }))
    out.push(...body.response)
    if (body.metadata === undefined || body.metadata.next_offset === undefined || body.metadata.next_offset === null) return out
    offset = body.metadata.next_offset
  }
}

const checks = []
function check (name, fn) {
  checks.push([name, fn])
}

check('user_crud', async () => {
  const u = await ok('POST', '/admin/v1/users', {
    username: uname('alice'), realname: 'Alice Liddell', email: 'alice@example.com',
    firstname: 'Alice', lastname: 'Liddell', notes: 'n', alias1: uname('al')
  })
  for (const k of USER_KEYS) assert(k in u, 'user lacks ' + k)
  assert(isDuoId(u.user_id, 'DU'), u.user_id)
  assert(Number.isInteger(u.created) && Math.abs(u.created - Date.now() / 1000) < 600, u.created)
  assert(u.status === 'active' && u.is_enrolled === false && u.last_login === null, u)
  eq(u.alias1, uname('al'))
  eq(u.aliases, { alias1: uname('al') })
  eq([u.groups, u.phones], [[], []])
  const got = await ok('GET', '/admin/v1/users/' + u.user_id)
  assert(got.username === uname('alice') && got.realname === 'Alice Liddell', got)
  let upd = await ok('POST', '/admin/v1/users/' + u.user_id, { realname: 'Alice L.', status: 'bypass', alias2: uname('al2') })
  assert(upd.realname === 'Alice L.' && upd.status === 'bypass', upd)
  eq(upd.aliases, { alias1: uname('al'), alias2: uname('al2') })
  upd = await ok('POST', '/admin/v1/users/' + u.user_id, { alias1: '' })
  eq(upd.alias1, null)
  eq(upd.aliases, { alias2: uname('al2') })
  eq(await ok('DELETE', '/admin/v1/users/' + u.user_id), '')
  eq(await ok('DELETE', '/admin/v1/users/' + u.user_id), '', 'delete is idempotent')
  await expectError('GET', '/admin/v1/users/' + u.user_id, {}, 404, 40401)
})

check('duplicate_username_and_alias_rejected', async () => {
  const a = await ok('POST', '/admin/v1/users', { username: uname('dup'), alias1: uname('dup-alias') })
  await expectError('POST', '/admin/v1/users', { username: uname('dup') }, 400, 40002, 'username')
  await expectError('POST', '/admin/v1/users', { username: uname('other'), alias1: uname('dup-alias') }, 400, 40002, 'alias1')
  await expectError('POST', '/admin/v1/users', { username: uname('dup-alias') }, 400, 40002, 'username')
  await expectError('POST', '/admin/v1/users/' + a.user_id, { status: 'locked out' }, 400, 40002, 'status')
  await ok('DELETE', '/admin/v1/users/' + a.user_id)
})

check('username_or_alias_lookup', async () => {
  const u = await ok('POST', '/admin/v1/users', { username: uname('bob'), alias1: uname('robert'), alias2: uname('bobby') })
  eq((await ok('GET', '/admin/v1/users', { username: uname('bob') })).map(x => x.user_id), [u.user_id])
  eq((await ok('GET', '/admin/v1/users', { username: uname('bobby') })).map(x => x.user_id), [u.user_id])
  eq(await ok('GET', '/admin/v1/users', { username: uname('nobody') }), [])
  const many = await ok('GET', '/admin/v1/users', { username_list: JSON.stringify([uname('robert'), uname('nobody')]) })
  eq(many.map(x => x.user_id), [u.user_id])
  const byIds = await ok('GET', '/admin/v1/users', { user_id_list: JSON.stringify([u.user_id]) })
  eq(byIds.map(x => x.username), [uname('bob')])
  await ok('POST', '/admin/v1/users/' + u.user_id, { email: 'bob@example.org' })
  eq((await ok('GET', '/admin/v1/users', { email: 'bob@example.org' })).map(x => x.user_id), [u.user_id])
  await ok('DELETE', '/admin/v1/users/' + u.user_id)
  eq(await ok('GET', '/admin/v1/users', { username: uname('robert') }), [])
})

check('paging_across_pages', async () => {
  const made = []
  for (let i = 0; i < 10; i++) made.push((await ok('POST', '/admin/v1/users', { username: uname('page' + String(i).padStart(2, '0')) })).user_id)
  const total = (await allPages('/admin/v1/users', 300)).length
  const seen = (await allPages('/admin/v1/users', 3)).map(u => u.user_id)
  eq(seen.length, total, 'paged count')
  eq(new Set(seen).size, total, 'no duplicates')
  assert(made.every(id => seen.includes(id)), 'every made user listed')
  const body = await okWithMetadata('GET', '/admin/v1/users', { limit: '3', offset: '3' })
  eq([body.metadata.total_objects, body.metadata.prev_offset, body.metadata.next_offset], [total, 0, 6], 'metadata')
  eq(body.response.length, 3)
  // A limit over the maximum is clamped silently.
  eq((await ok('GET', '/admin/v1/users', { limit: '100000', offset: '0' })).length, Math.min(total, 300))
  const last = await okWithMetadata('GET', '/admin/v1/users', { limit: '3', offset: String(total - 1) })
  eq(last.response.length, 1)
  assert(!('next_offset' in last.metadata), 'no next_offset on the last page: ' + JSON.stringify(last.metadata))
  for (const id of made) await ok('DELETE', '/admin/v1/users/' + id)
})

check('group_crud', async () => {
  const g = await ok('POST', '/admin/v1/groups', { name: uname('staff'), desc: 'Staff', status: 'active', push_enabled: 'true' })
  eq(Object.keys(g).sort(), GROUP_KEYS)
  assert(isDuoId(g.group_id, 'DG') && g.name === uname('staff') && g.desc === 'Staff', g)
  eq(g.status, 'Active', 'title-case status')
  // Duo reports the legacy factor flags as false whatever is sent.
  eq([g.push_enabled, g.sms_enabled, g.voice_enabled, g.mobile_otp_enabled], [false, false, false, false])
  const v2 = await ok('GET', '/admin/v2/groups/' + g.group_id)
  assert(v2.group_id === g.group_id && v2.name === uname('staff'), v2)
  eq((await ok('GET', '/admin/v1/groups/' + g.group_id)).group_id, g.group_id)
  await ok('POST', '/admin/v1/groups/' + g.group_id, { name: uname('staff2'), desc: 'All staff', status: 'bypass' })
  const after = await ok('GET', '/admin/v2/groups/' + g.group_id)
  assert(after.name === uname('staff2') && after.desc === 'All staff' && after.status.toLowerCase() === 'bypass', after)
  assert((await allPages('/admin/v1/groups', 100)).some(x => x.group_id === g.group_id), 'listed')
  eq((await ok('GET', '/admin/v1/groups', { group_id_list: JSON.stringify([g.group_id]) })).map(x => x.group_id), [g.group_id])
  const dup = await expectError('POST', '/admin/v1/groups', { name: uname('staff2') }, 400, 40003)
  eq(dup.message, 'Duplicate resource')
  await expectError('POST', '/admin/v1/groups', { name: uname('x'), status: 'sleepy' }, 400, 40002, 'status')
  eq(await ok('DELETE', '/admin/v1/groups/' + g.group_id), '')
  await expectError('GET', '/admin/v2/groups/' + g.group_id, {}, 404, 40401)
})

check('group_paging', async () => {
  const made = []
  for (let i = 0; i < 7; i++) made.push((await ok('POST', '/admin/v1/groups', { name: uname('gp' + i) })).group_id)
  const seen = (await allPages('/admin/v1/groups', 2)).map(g => g.group_id)
  assert(made.every(id => seen.includes(id)) && new Set(seen).size === seen.length, seen)
  for (const id of made) await ok('DELETE', '/admin/v1/groups/' + id)
})

check('memberships', async () => {
  const u = await ok('POST', '/admin/v1/users', { username: uname('carol') })
  const g1 = await ok('POST', '/admin/v1/groups', { name: uname('g1') })
  const g2 = await ok('POST', '/admin/v1/groups', { name: uname('g2') })
  eq(await ok('POST', '/admin/v1/users/' + u.user_id + '/groups', { group_id: g1.group_id }), '')
  eq(await ok('POST', '/admin/v1/users/' + u.user_id + '/groups', { group_id: g2.group_id }), '')
  // Already a member: Duo's 400/40004 (Grouper's captured production reply).
  const again = await expectError('POST', '/admin/v1/users/' + u.user_id + '/groups', { group_id: g2.group_id }, 400, 40004,
    'User is already a member of the specified group')
  eq(again.message, 'Operation failed')
  const embedded = (await ok('GET', '/admin/v1/users/' + u.user_id)).groups
  eq(embedded.map(x => x.group_id), [g1.group_id, g2.group_id])
  for (const k of GROUP_KEYS) assert(k in embedded[0], 'embedded group lacks ' + k)
  eq((await allPages('/admin/v1/users/' + u.user_id + '/groups', 100)).map(x => x.group_id), [g1.group_id, g2.group_id])
  eq((await allPages('/admin/v2/groups/' + g1.group_id + '/users', 100)).map(x => x.user_id), [u.user_id])
  await expectError('POST', '/admin/v1/users/' + u.user_id + '/groups', { group_id: 'DG' + 'Z'.repeat(18) }, 400, 40002, 'group_id')
  await expectError('POST', '/admin/v1/users/DU' + 'Z'.repeat(18) + '/groups', { group_id: g1.group_id }, 404, 40401)
  eq(await ok('DELETE', '/admin/v1/users/' + u.user_id + '/groups/' + g1.group_id), '')
  eq(await ok('DELETE', '/admin/v1/users/' + u.user_id + '/groups/' + g1.group_id), '', 'absent: 200')
  eq((await ok('GET', '/admin/v1/users/' + u.user_id)).groups.map(x => x.group_id), [g2.group_id])
  eq(await allPages('/admin/v2/groups/' + g1.group_id + '/users', 100), [])
  await ok('DELETE', '/admin/v1/groups/' + g2.group_id)
  eq((await ok('GET', '/admin/v1/users/' + u.user_id)).groups, [])
  await ok('DELETE', '/admin/v1/users/' + u.user_id)
  await ok('DELETE', '/admin/v1/groups/' + g1.group_id)
})

check('membership_limit_of_100_groups', async () => {
  const u = await ok('POST', '/admin/v1/users', { username: uname('joiner') })
  const gids = []
  for (let i = 0; i < 101; i++) gids.push((await ok('POST', '/admin/v1/groups', { name: uname('lim' + i) })).group_id)
  for (const gid of gids.slice(0, 100)) await ok('POST', '/admin/v1/users/' + u.user_id + '/groups', { group_id: gid })
  const body = await expectError('POST', '/admin/v1/users/' + u.user_id + '/groups', { group_id: gids[100] }, 500, 50001)
  eq(body.message, 'Unknown internal server error')
  eq((await allPages('/admin/v1/users/' + u.user_id + '/groups', 100)).length, 100)
  await ok('DELETE', '/admin/v1/users/' + u.user_id)
  for (const gid of gids) await ok('DELETE', '/admin/v1/groups/' + gid)
})

check('error_bad_signature', async () => {
  await expectError('GET', '/admin/v1/users', { limit: '1' }, 401, 40103, undefined, client('DUO_IKEY', 'DUO_SKEY', PORT, 'X'.repeat(40)))
})

check('error_unknown_ikey', async () => {
  const sig = SIG === 5 ? duoApi.SIGNATURE_VERSION_5 : duoApi.SIGNATURE_VERSION_2
  const other = new duoApi.Client('DIUNKNOWNUNKNOWNUNKN', 'Y'.repeat(40), HOST + ':' + PORT, sig)
  await expectError('GET', '/admin/v1/users', { limit: '1' }, 401, 40102, undefined, other)
})

check('error_missing_grant', async () => {
  const ro = client('DUO_RO_IKEY', 'DUO_RO_SKEY')
  assert(Array.isArray(await ok('GET', '/admin/v1/users', { limit: '1' }, ro)), 'read works')
  await expectError('POST', '/admin/v1/users', { username: uname('nope') }, 403, 40301, undefined, ro)
  await expectError('GET', '/admin/v1/admins', {}, 403, 40301, undefined, ro)
  const ng = client('DUO_NG_IKEY', 'DUO_NG_SKEY')
  await expectError('GET', '/admin/v1/users', { limit: '1' }, 403, 40301, undefined, ng)
  eq(await ok('GET', '/admin/v1/users', { username: uname('nope') }), [])
})

check('error_missing_parameter', async () => {
  await expectError('POST', '/admin/v1/users', {}, 400, 40002, 'username')
  await expectError('POST', '/admin/v1/groups', {}, 400, 40002, 'name')
  const u = await ok('POST', '/admin/v1/users', { username: uname('needs-group') })
  await expectError('POST', '/admin/v1/users/' + u.user_id + '/groups', {}, 400, 40002, 'group_id')
  await ok('DELETE', '/admin/v1/users/' + u.user_id)
})

check('error_unknown_id', async () => {
  const q = 'Q'.repeat(18)
  await expectError('GET', '/admin/v1/users/DU' + q, {}, 404, 40401)
  await expectError('GET', '/admin/v1/users/not-an-id', {}, 404, 40401)
  await expectError('POST', '/admin/v1/users/DU' + q, { realname: 'x' }, 404, 40401)
  await expectError('GET', '/admin/v2/groups/DG' + q, {}, 404, 40401)
  await expectError('GET', '/admin/v2/groups/DG' + q + '/users', {}, 404, 40401)
  await expectError('GET', '/admin/v1/users/DU' + q + '/groups', {}, 404, 40401)
  await expectError('GET', '/admin/v1/nothing', {}, 404, 40401)
  eq(await ok('DELETE', '/admin/v1/users/DU' + q), '')
  eq(await ok('DELETE', '/admin/v1/groups/DG' + q), '')
})

check('bulk_create_and_trash', async () => {
  const users = [0, 1, 2].map(i => ({ username: uname('bulk' + i), realname: 'Bulk ' + i }))
  const created = await ok('POST', '/admin/v1/users/bulk_create', { users: JSON.stringify(users) })
  eq(created.map(u => u.username), users.map(u => u.username))
  assert(created.every(u => isDuoId(u.user_id, 'DU')), created)
  // All or nothing: one duplicate rejects the whole batch.
  const again = [{ username: uname('bulk-new') }, { username: uname('bulk0') }]
  await expectError('POST', '/admin/v1/users/bulk_create', { users: JSON.stringify(again) }, 400, 40002)
  eq(await ok('GET', '/admin/v1/users', { username: uname('bulk-new') }), [])
  const ids = created.map(u => u.user_id)
  await ok('POST', '/admin/v1/users/bulk_send_to_trash', { user_id_list: JSON.stringify(ids.slice(0, 2)) })
  eq((await ok('GET', '/admin/v1/users/' + ids[0])).status, 'pending deletion')
  await ok('POST', '/admin/v1/users/bulk_restore', { user_id_list: JSON.stringify(ids.slice(0, 1)) })
  eq((await ok('GET', '/admin/v1/users/' + ids[0])).status, 'active')
  eq((await ok('GET', '/admin/v1/users/' + ids[1])).status, 'pending deletion')
  for (const id of ids) await ok('DELETE', '/admin/v1/users/' + id)
})

check('bulk_operations', async () => {
  const u = await ok('POST', '/admin/v1/users', { username: uname('ops') })
  const g = await ok('POST', '/admin/v1/groups', { name: uname('ops-group') })
  const ops = [
    { method: 'POST', path: '/admin/v1/users', body: { username: uname('ops-new') } },
    { method: 'POST', path: '/admin/v1/users/' + u.user_id, body: { realname: 'Ops Person' } },
    { method: 'POST', path: '/admin/v1/users/' + u.user_id + '/groups', body: { group_id: g.group_id } },
    { method: 'POST', path: '/admin/v1/users', body: {} }
  ]
  const res = await ok('POST', '/admin/v1/bulk', { operations: JSON.stringify(ops) })
  eq(res.map(r => r.stat), ['OK', 'OK', 'OK', 'FAIL'])
  eq(res[3].code, 40002)
  eq(res[0].response.username, uname('ops-new'))
  const got = await ok('GET', '/admin/v1/users/' + u.user_id)
  assert(got.realname === 'Ops Person', got)
  eq(got.groups.map(x => x.group_id), [g.group_id])
  const ops2 = [
    { method: 'DELETE', path: '/admin/v1/users/' + u.user_id + '/groups/' + g.group_id, body: {} },
    { method: 'DELETE', path: '/admin/v1/users/' + res[0].response.user_id, body: {} }
  ]
  // With v5 the client sends a JSON body, so `operations` can be the array itself.
  const params = SIG === 5 ? { operations: ops2 } : { operations: JSON.stringify(ops2) }
  eq((await ok('POST', '/admin/v1/bulk', params)).map(r => r.stat), ['OK', 'OK'])
  eq((await ok('GET', '/admin/v1/users/' + u.user_id)).groups, [])
  eq(await ok('GET', '/admin/v1/users', { username: uname('ops-new') }), [])
  const tooMany = Array(51).fill({ method: 'DELETE', path: '/admin/v1/users/DU' + 'Q'.repeat(18), body: {} })
  await expectError('POST', '/admin/v1/bulk', { operations: JSON.stringify(tooMany) }, 400, 40002)
  await ok('DELETE', '/admin/v1/users/' + u.user_id)
  await ok('DELETE', '/admin/v1/groups/' + g.group_id)
})

check('administrators', async () => {
  const a = await ok('POST', '/admin/v1/admins', { name: uname('Admin One'), email: uname('admin1') + '@example.com', phone: '+15555550100', role: 'Help Desk' })
  assert(isDuoId(a.admin_id, 'DE') && a.role === 'Help Desk' && a.status === 'Active', a)
  eq((await ok('GET', '/admin/v1/admins/' + a.admin_id)).email, uname('admin1') + '@example.com')
  const u = await ok('POST', '/admin/v1/admins/' + a.admin_id, { name: uname('Admin 1'), role: 'Administrator' })
  assert(u.name === uname('Admin 1') && u.role === 'Administrator', u)
  assert((await allPages('/admin/v1/admins', 100)).some(x => x.admin_id === a.admin_id), 'listed')
  await expectError('POST', '/admin/v1/admins', { name: 'Dup', email: uname('admin1') + '@example.com' }, 400, 40002, 'email')
  eq(await ok('DELETE', '/admin/v1/admins/' + a.admin_id), '')
  await expectError('GET', '/admin/v1/admins/' + a.admin_id, {}, 404, 40401)
})

check('rate_limited_stretch_rides_through_backoff', async () => {
  const rl = client('DUO_IKEY', 'DUO_SKEY', RL_PORT)
  const u = await ok('POST', '/admin/v1/users', { username: uname('limited') }, rl)
  for (let i = 0; i < 6; i++) eq((await ok('GET', '/admin/v1/users/' + u.user_id, {}, rl)).username, uname('limited'))
  const calls = await new Promise((resolve, reject) => {
    http.get({ hostname: HOST, port: RL_PORT, path: '/_emulator/calls' }, res => {
      let data = ''
      res.on('data', d => { data += d })
      res.on('end', () => { try { resolve(JSON.parse(data)) } catch (e) { reject(e) } })
    }).on('error', reject)
  })
  const got = calls.by_endpoint['users.get']
  assert(Number(got['429'] || 0) >= 1, 'the client met a 429: ' + JSON.stringify(got))
  eq(Number(got['200'] || 0), 6, 'every read answered in the end')
})

async function main () {
  const failed = []
  for (const [name, fn] of checks) {
    try {
      await fn()
      console.log('PASS ' + TAG + ' ' + name)
    } catch (e) {
      failed.push(name)
      console.log('FAIL ' + TAG + ' ' + name + '\n' + (e && e.stack ? e.stack : e))
    }
  }
  console.log(TAG + ': ' + checks.length + ' checks, ' + failed.length + ' failed' + (failed.length ? ': ' + failed.join(', ') : ''))
  process.exit(failed.length ? 1 : 0)
}

main()
