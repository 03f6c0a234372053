"""Everything that talks to AWS: boto3 clients and their errors, RDS, the security group, the
public IP look-up that feeds it, Cognito, and the Lambda deploy. boto3 is imported only inside calls."""
