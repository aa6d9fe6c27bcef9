-- The driver's phone of a vehicle, so that a seat agent can reach the driver through a
-- masked number (POST /v1/cases/{case_id}/call). Only the provider sees it.
ALTER TABLE vehicles ADD COLUMN driver_phone TEXT;
