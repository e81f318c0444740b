-- SteVe's tables as the importer reads them (column names and types as in SteVe's Flyway schema), plus two it
-- deliberately leaves out (user, address). Written for the test from the schema's facts; only these columns.
CREATE TABLE address (
  address_pk INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  street VARCHAR(1000) NULL,
  city VARCHAR(255) NULL
);
CREATE TABLE charge_box (
  charge_box_pk INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  charge_box_id VARCHAR(255) NOT NULL UNIQUE,
  endpoint_address VARCHAR(255) NULL,
  ocpp_protocol VARCHAR(255) NULL,
  registration_status VARCHAR(255) NOT NULL DEFAULT 'Accepted',
  charge_point_vendor VARCHAR(255) NULL,
  charge_point_model VARCHAR(255) NULL,
  charge_point_serial_number VARCHAR(255) NULL,
  fw_version VARCHAR(255) NULL,
  last_heartbeat_timestamp TIMESTAMP(6) NULL DEFAULT NULL,
  address_pk INT NULL
);
CREATE TABLE connector (
  connector_pk INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  charge_box_id VARCHAR(255) NOT NULL,
  connector_id INT NOT NULL,
  UNIQUE (charge_box_id, connector_id),
  FOREIGN KEY (charge_box_id) REFERENCES charge_box (charge_box_id) ON DELETE CASCADE
);
CREATE TABLE connector_status (
  connector_pk INT UNSIGNED NOT NULL,
  status_timestamp TIMESTAMP(6) NULL DEFAULT NULL,
  status VARCHAR(255) NULL,
  error_code VARCHAR(255) NULL,
  error_info VARCHAR(255) NULL,
  vendor_id VARCHAR(255) NULL,
  vendor_error_code VARCHAR(255) NULL
);
CREATE TABLE ocpp_tag (
  ocpp_tag_pk INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  id_tag VARCHAR(255) NOT NULL UNIQUE,
  parent_id_tag VARCHAR(255) NULL,
  expiry_date TIMESTAMP(6) NULL DEFAULT NULL,
  max_active_transaction_count INT NOT NULL DEFAULT 1,
  note MEDIUMTEXT NULL
);
CREATE TABLE user (
  user_pk INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ocpp_tag_pk INT NULL,
  address_pk INT NULL,
  first_name VARCHAR(255) NULL,
  e_mail VARCHAR(255) NULL
);
CREATE TABLE transaction_start (
  transaction_pk INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  event_timestamp TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  connector_pk INT UNSIGNED NOT NULL,
  id_tag VARCHAR(255) NOT NULL,
  start_timestamp TIMESTAMP(6) NULL DEFAULT NULL,
  start_value VARCHAR(255) NULL
);
CREATE TABLE transaction_stop (
  transaction_pk INT UNSIGNED NOT NULL,
  event_timestamp TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  event_actor ENUM('station', 'manual') NULL,
  stop_timestamp TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  stop_value VARCHAR(255) NOT NULL,
  stop_reason VARCHAR(255) NULL,
  PRIMARY KEY (transaction_pk, event_timestamp)
);
CREATE TABLE connector_meter_value (
  connector_pk INT UNSIGNED NOT NULL,
  transaction_pk INT UNSIGNED NULL,
  value_timestamp TIMESTAMP(6) NULL DEFAULT NULL,
  value TEXT NULL,
  reading_context VARCHAR(255) NULL,
  format VARCHAR(255) NULL,
  measurand VARCHAR(255) NULL,
  location VARCHAR(255) NULL,
  unit VARCHAR(255) NULL,
  phase VARCHAR(255) NULL
);
CREATE TABLE reservation (
  reservation_pk INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  connector_pk INT UNSIGNED NOT NULL,
  transaction_pk INT UNSIGNED NULL,
  id_tag VARCHAR(255) NOT NULL,
  start_datetime DATETIME NULL,
  expiry_datetime DATETIME NULL,
  status VARCHAR(255) NOT NULL
);
