-- Authentication-method counts on the Duo users table (Grouper's GRP-7384 "sync back auth
-- methods"), and Grouper's own name for the table as a view; see docs/duo-users.md.
-- A count is NULL when Duo's answer did not say, never 0 for "unknown".
ALTER TABLE duo_user ADD COLUMN push_phone_count BIGINT;
ALTER TABLE duo_user ADD COLUMN mobile_otp_phone_count BIGINT;
ALTER TABLE duo_user ADD COLUMN push_phone_last_seen BIGINT;
ALTER TABLE duo_user ADD COLUMN sms_phone_count BIGINT;
ALTER TABLE duo_user ADD COLUMN voice_phone_count BIGINT;
ALTER TABLE duo_user ADD COLUMN duo_hardware_token_count BIGINT;
ALTER TABLE duo_user ADD COLUMN hotp_token_count BIGINT;
ALTER TABLE duo_user ADD COLUMN totp_token_count BIGINT;
ALTER TABLE duo_user ADD COLUMN yubikey_otp_token_count BIGINT;
ALTER TABLE duo_user ADD COLUMN webauthn_count BIGINT;
ALTER TABLE duo_user ADD COLUMN u2f_count BIGINT;

DROP VIEW duo_user_report;
CREATE VIEW duo_user_report AS
SELECT d.config_id, d.user_id, d.user_name, d.real_name, d.first_name, d.last_name, d.email,
       d.status, d.is_enrolled, d.is_push_enabled, d.aliases, d.phones, d.notes,
       d.created_at, d.last_login_time, d.last_directory_sync,
       d.push_phone_count, d.mobile_otp_phone_count, d.push_phone_last_seen, d.sms_phone_count,
       d.voice_phone_count, d.duo_hardware_token_count, d.hotp_token_count, d.totp_token_count,
       d.yubikey_otp_token_count, d.webauthn_count, d.u2f_count,
       s.source AS subject_source, s.subject_id AS subject_id, s.name AS subject_name,
       s.login_id AS subject_login_id,
       l.loaded_at
FROM duo_user d
LEFT JOIN subject s ON lower(s.login_id) = lower(d.user_name)
LEFT JOIN duo_user_load l ON l.config_id = d.config_id;

-- Grouper's table, by Grouper's name, with Grouper's sixteen columns in Grouper's order, so
-- reports and SQL written against grouper_prov_duo_user run unchanged.
CREATE VIEW grouper_prov_duo_user AS
SELECT config_id, user_id, aliases, phones, is_push_enabled, email, first_name, last_name,
       is_enrolled, last_directory_sync, notes, real_name, status, user_name, created_at,
       last_login_time
FROM duo_user;
