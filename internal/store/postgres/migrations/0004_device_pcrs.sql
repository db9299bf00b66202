-- TPM devices' PCR policy (internal/hub, docs/hub.md): the PCR values
-- recorded at enrollment (JSON {"index": "hex"}), the device's PCR policy
-- ('' = the hub's default, 'enrolled' or 'off'), whether an operator
-- re-approved the device (its next attestation's PCRs are accepted and
-- recorded), and the last refused sign-in (why and when) for the list.
ALTER TABLE devices ADD COLUMN pcrs BYTEA;
ALTER TABLE devices ADD COLUMN pcr_policy TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN reapprove BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE devices ADD COLUMN refusal TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN refused_at TIMESTAMPTZ;
