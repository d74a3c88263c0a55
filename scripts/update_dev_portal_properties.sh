#!/bin/sh
# Sets the Developer Portal's properties of the component from component_config/, one file per
# property, as Keboola's component template does (cookiecutter-python-component's
# scripts/developer_portal/update_properties.sh): a file that is missing or empty is skipped, so
# that the portal keeps what it has rather than an empty value. With property names as arguments,
# sets only those. Credentials come from the environment: see deploy.sh.
set -eu

CLI=quay.io/keboola/developer-portal-cli-v2:latest
ONLY="$*"

update_property() {
    property="$1"
    file="$2"
    if [ -n "$ONLY" ] && ! echo " $ONLY " | grep -q " $property "; then
        return
    fi
    if [ ! -f "$file" ]; then
        echo "$file not found: $property left as it is"
        return
    fi
    value=$(cat "$file")
    if [ -z "$value" ]; then
        echo "$file is empty: $property left as it is"
        return
    fi
    echo "Setting $property from $file"
    docker run --rm -e KBC_DEVELOPERPORTAL_USERNAME -e KBC_DEVELOPERPORTAL_PASSWORD "$CLI" \
        update-app-property "$KBC_DEVELOPERPORTAL_VENDOR" "$KBC_DEVELOPERPORTAL_APP" "$property" --value="$value"
}

# Seconds before Keboola kills the job; the binary is built knowing this value (src/keboola.rs),
# so deploy.sh sets it before it releases an image.
update_property "processTimeout" "component_config/processTimeout"
update_property "shortDescription" "component_config/component_short_description.md"
update_property "longDescription" "component_config/component_long_description.md"
update_property "configurationDescription" "component_config/configuration_description.md"
update_property "configurationSchema" "component_config/configSchema.json"
update_property "documentationUrl" "component_config/documentationUrl.md"
update_property "sourceCodeUrl" "component_config/sourceCodeUrl.md"
update_property "licenseUrl" "component_config/licenseUrl.md"
# `standard`: stdout streams live into the job's events (the earlier component's `gelf` did not).
update_property "logger" "component_config/logger"
# The form from configSchema.json; the component maps its own outputs (default bucket).
update_property "uiOptions" "component_config/uiOptions.md"
# Typed tables where the project has native types: the manifests carry every column's type.
update_property "dataTypesConfiguration" "component_config/dataTypesConfiguration.json"
# The sync actions the UI may call; an unregistered one leaves the dropdown and buttons dead.
update_property "actions" "component_config/actions.md"
