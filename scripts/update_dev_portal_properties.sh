#!/bin/sh
# Sets the Developer Portal's properties of the component from component_config/, one file per
# property, as Keboola's component template does (cookiecutter-python-component's
# scripts/update_dev_portal_properties.sh). Credentials come from the environment: see deploy.sh.
set -eu

CLI=quay.io/keboola/developer-portal-cli-v2:latest

update_property() {
    property="$1"
    file="$2"
    value=$(cat "$file")
    if [ -z "$value" ]; then
        echo "$file is empty: $property left as it is" >&2
        exit 1
    fi
    echo "Setting $property from $file"
    docker run --rm -e KBC_DEVELOPERPORTAL_USERNAME -e KBC_DEVELOPERPORTAL_PASSWORD "$CLI" \
        update-app-property "$KBC_DEVELOPERPORTAL_VENDOR" "$KBC_DEVELOPERPORTAL_APP" "$property" --value="$value"
}

update_property "shortDescription" "component_config/component_short_description.md"
update_property "longDescription" "component_config/component_long_description.md"
update_property "configurationDescription" "component_config/configuration_description.md"
update_property "configurationSchema" "component_config/configSchema.json"
update_property "documentationUrl" "component_config/documentationUrl.md"
update_property "sourceCodeUrl" "component_config/sourceCodeUrl.md"
update_property "licenseUrl" "component_config/licenseUrl.md"
# `standard`: stdout streams live into the job's events (the earlier component's `gelf` did not).
update_property "logger" "component_config/logger"
update_property "stackParameters" "component_config/stack_parameters.json"
# The sync actions the UI may call; an unregistered one leaves the dropdown and buttons dead.
update_property "actions" "component_config/actions.md"
